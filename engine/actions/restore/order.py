"""Load order from foreign keys: parents before children; a cycle (or a self-reference) is one
group, loaded with ``foreign_key_checks=0`` and checked for orphans afterwards."""

from __future__ import annotations


def _cycle_groups(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative), parents→children edges."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out


def order_tables(names: list[str], fks: list[tuple[str, str, str]], sizes: dict[str, int]) -> tuple[list[str], dict[str, int], dict[str, int | None], dict[str, set[str]]]:
    """(load order, level, cycle group or None, parents) from ``(child, parent, constraint)``
    edges among ``names``: parents first; among equals, the larger table first."""
    edges: dict[str, set[str]] = {n: set() for n in names}
    selfref: set[str] = set()
    for child, parent, _ in fks:
        if child in edges and parent in edges:
            if child == parent:
                selfref.add(child)
            else:
                edges[parent].add(child)
    comps = _cycle_groups(sorted(names), edges)
    comp_of = {n: i for i, c in enumerate(comps) for n in c}
    group: dict[str, int | None] = {}
    gid = 0
    for c in comps:
        if len(c) > 1 or c[0] in selfref:
            gid += 1
            for n in c:
                group[n] = gid
        else:
            group[c[0]] = None
    # levels over the condensed DAG
    parents_c: dict[int, set[int]] = {i: set() for i in range(len(comps))}
    for p, children in edges.items():
        for ch in children:
            if comp_of[p] != comp_of[ch]:
                parents_c[comp_of[ch]].add(comp_of[p])
    level_c: dict[int, int] = {}

    def lvl(i: int) -> int:
        if i not in level_c:
            level_c[i] = 0
            level_c[i] = 1 + max((lvl(p) for p in parents_c[i]), default=-1)
        return level_c[i]

    level = {n: lvl(comp_of[n]) for n in names}
    # a cycle group waits for the parents of any of its members
    ext: dict[int, set[str]] = {i: set() for i in range(len(comps))}
    for p, children in edges.items():
        for ch in children:
            if comp_of[p] != comp_of[ch]:
                ext[comp_of[ch]].add(p)
    parents = {n: set(ext[comp_of[n]]) for n in names}
    order = sorted(names, key=lambda n: (level[n], -sizes.get(n, 0), n))
    return order, level, group, parents
