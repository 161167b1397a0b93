"""The Lambda handlers, one module per function (``functions.<name>.handler``).

Importing a handler module is its function's cold start. Meanwhile Python's cyclic
garbage collector would run several full collections over objects that all live as long
as the process (modules, classes, pydantic schemas), about a tenth of the import time.
So it is paused here, the first code a handler's import runs, until the handler calls
`imports_done` after its own imports: that freezes what the imports made (later
collections skip it) and resumes collecting. `tests/test_handler_imports.py` checks
that every handler does.
"""

from __future__ import annotations

import gc

gc.disable()


def imports_done() -> None:
    """Call after a handler module's imports: freeze what they made, resume collecting."""
    gc.freeze()
    gc.enable()
