"""Every change the emulator makes to moto's own code, in one place, reversible.

Most shims rewrite requests and responses (``compat/``) and leave moto alone. A few cannot: the
divergence is inside moto's model (a bucket's policy check, ECS's resource arithmetic, the ECS task
state machine). Those shims return :class:`Patch` objects from ``Shim.patches()``; ``build_app``
installs the active shims' patches through :func:`install`, and :func:`uninstall` puts moto's
originals back (a test proves it does). Nothing else in the emulator assigns to a moto attribute.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_MISSING = object()
_LOCK = threading.Lock()
# (owner, attribute) -> (what owner.__dict__ held before, or _MISSING); in installation order
_ORIGINALS: dict[tuple[type, str], object] = {}


@dataclass(frozen=True)
class Patch:
    """Replace ``owner.attribute``; ``replace(original)`` builds the replacement from what moto had.

    ``original`` is the raw class attribute (``owner.__dict__[attribute]``: a function, or a
    ``staticmethod`` object); for an inherited one, what ``getattr`` finds (None if nothing).
    """

    owner: type
    attribute: str
    replace: Callable[[object], object]

    @property
    def key(self) -> tuple[type, str]:
        return (self.owner, self.attribute)


def install(patches: Iterable[Patch]) -> None:
    """Install each patch not installed yet (an attribute is patched once, by one shim)."""
    with _LOCK:
        for patch in patches:
            if patch.key in _ORIGINALS:
                continue
            original = patch.owner.__dict__.get(patch.attribute, _MISSING)
            _ORIGINALS[patch.key] = original
            inherited = getattr(patch.owner, patch.attribute, None)
            setattr(patch.owner, patch.attribute, patch.replace(inherited if original is _MISSING else original))


def uninstall() -> None:
    """Put back what moto had, in reverse order of installation."""
    with _LOCK:
        for (owner, attribute), original in reversed(list(_ORIGINALS.items())):
            if original is _MISSING:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)
        _ORIGINALS.clear()


def installed() -> list[tuple[type, str]]:
    """The (owner, attribute) pairs patched now."""
    with _LOCK:
        return list(_ORIGINALS)
