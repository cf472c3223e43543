"""The built-in actions, one module (or package) each; `engine.actions.registry` knows them all."""
