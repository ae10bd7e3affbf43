"""What a sample's own label becomes beside a target label of the same name, and how
the rendered text is read back when a reload changes the target labels' names.

The rule is Prometheus' for a scraped label with ``honor_labels: false``; ``render``
(``exporter.core.exposition``) and the relay (``exporter.sources.relay``) both follow
it, and ``exporter.core.relabel`` undoes it.
"""

from __future__ import annotations

from collections.abc import Sequence

EXPORTED = "exported_"


def exported_names(
    names: Sequence[str], empty: Sequence[bool], taken: frozenset[str]
) -> tuple[str | None, ...]:
    """What each of a sample's own labels (``names``, all different; ``empty`` says
    which have an empty value) becomes beside target labels named ``taken``, as
    Prometheus renames scraped labels with ``honor_labels: false``: its name, or None
    when it is left out.

    Prometheus sets every target label on a scraped sample; a scraped label of the
    same name with a non-empty value is kept as ``exported_<name>``, or
    ``exported_exported_<name>`` if that name is taken too, and so on (the clashing
    labels are handled shortest name first, then by name). A label with an empty value
    is the same as no label to Prometheus: one that clashes gives way, and so does one
    whose name a renamed label takes.
    """
    present = {n for n, e in zip(names, empty, strict=True) if not e} | taken
    conflicts = sorted(n for n, e in zip(names, empty, strict=True) if n in taken and not e)
    conflicts.sort(key=len)
    renamed: dict[str, str] = {}
    for name in conflicts:
        new = name
        while True:
            new = EXPORTED + new
            if new not in present:
                present.add(new)
                renamed[name] = new
                break
    took = set(renamed.values())
    out: list[str | None] = []
    for name, e in zip(names, empty, strict=True):
        if name in taken:
            out.append(renamed.get(name))
        elif e and name in took:
            out.append(None)  # an empty label that a renamed one overwrites
        else:
            out.append(name)
    return tuple(out)


def watched(taken: frozenset[str]) -> frozenset[str]:
    """The own label names that send a sample to ``join_clashing`` beside extra labels
    named ``taken``: those names, which are renamed, and ``exported_<name>`` for each,
    which may not read back (``reversible``). A sample with none is written as it is."""
    return taken | {EXPORTED + name for name in taken}


def reversible(names: Sequence[str], renamed: Sequence[str | None], taken: frozenset[str]) -> bool:
    """Whether a sample's own labels (``names``) come back from what ``exported_names``
    made of them beside extra labels named ``taken`` (``renamed``), read as ``own_lines``
    reads the text: none left out, and ``exported_<name>`` with ``<name>`` in ``taken``
    read as ``<name>``. They do unless a label the vendor named ``exported_<name>`` is
    met, a renaming goes more than one level, or an empty label gives way. Two samples
    whose labels come back are written alike only when their own labels are alike."""
    cut = len(EXPORTED)
    for name, new in zip(names, renamed, strict=True):
        if new is None:
            return False
        if new.startswith(EXPORTED) and new[cut:] in taken:
            new = new[cut:]
        if new != name:
            return False
    return True


def own_lines(chunk: bytes, taken: frozenset[str], tail: str) -> bytes:
    """Lines ``render`` made with extra labels named ``taken`` and written ``tail``, as
    they are with none, for a family with no ``Rendered.plain`` (each sample's labels
    ``reversible``): the extra labels taken off, then one level of renaming undone.

    Both are replacements over the whole chunk. The extra labels end every label set,
    and ``,exported_<name>="`` or ``{exported_<name>="`` starts a label: neither can
    occur inside a value, where every ``"`` is escaped. Shorter names go first, so that
    the ``exported_<name>`` one level gives back is not read back once more."""
    if tail:
        chunk = chunk.replace(f",{tail}}} ".encode(), b"} ").replace(f"{{{tail}}} ".encode(), b" ")
    if EXPORTED.encode() in chunk:
        for name in sorted(taken, key=lambda n: (len(n), n)):
            for edge in "{,":
                chunk = chunk.replace(f'{edge}{EXPORTED}{name}="'.encode(), f'{edge}{name}="'.encode())
    return chunk
