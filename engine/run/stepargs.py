"""What a step's arguments and conditions read and render to, for the executor.

The digest of the rendered arguments that the journal records with each intent (secrets
masked first), the variables an explicit undo must carry to rollback, and whether a looped
step's ``when`` is evaluated per item.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from engine.errors import TemplateError
from engine.model import Step
from engine.secrets import MASKER
from engine.templating.render import ENGINE, names_in


#: ``json.dumps(x, sort_keys=True, default=str)``, built once (dumps with arguments builds an
#: encoder at every call, and every step's intent has a digest); the text, so the digest, is the same
_DIGEST_JSON = json.JSONEncoder(sort_keys=True, default=str)


def args_digest(action: str, args: Any) -> str:
    text = _DIGEST_JSON.encode([action, MASKER.data(args)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def loop_sees_item(step: Step) -> bool:
    """Ansible evaluates ``when`` per item when it mentions the loop variable."""
    conds = step.when if isinstance(step.when, list) else [step.when]
    texts = [c if "{{" in str(c) else "{{ " + str(c) + " }}" for c in conds]
    return step.loop_var in names_in(texts)


def captured(undo: dict[str, Any], vars_: dict[str, Any]) -> dict[str, Any]:
    """The variables an explicit undo's templates read, captured at do time, so rollback
    renders it exactly as it would have been then."""
    from engine.actions._util import plain

    out: dict[str, Any] = {}
    for name in names_in([undo]):
        if name in vars_:
            try:
                out[name] = plain(ENGINE.render("{{ " + name + " }}", vars_))
            except TemplateError:
                continue
    return out


def sql_view(args: Any, vars_: dict[str, Any]) -> Any:
    """For the digest of an action that renders its own args: the rendered statements."""
    from engine.actions.sql import rendered_statements

    text = args if isinstance(args, str) else args.get("query") if isinstance(args, dict) else None
    if isinstance(text, str):
        try:
            return rendered_statements(text, vars_)
        except TemplateError:
            return args
    return args
