"""
L{Headers}: the ordered, case-insensitive header lines of a SIP message, pure.
"""
from __future__ import annotations

from typing import Iterator

from appliance.sip.headers import _LIST_HEADERS, canonical_name, header_key, name_key, split_list

__all__ = ["Headers"]


class Headers:
    """
    An ordered, case-insensitive multi-map of header lines.

    Each entry is one header line as received (after unfolding); known
    names are stored in canonical spelling (compact forms expanded), unknown
    names keep theirs. L{get_all} splits comma lists of list headers.
    """

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        """
        @param items: initial C{(name, value)} pairs.
        """
        self._items: list[tuple[str, str, str]] = []
        for name, value in items or ():
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """
        Append a header line.

        @param name: the name, any spelling.
        @param value: the value.
        """
        key, spelled = name_key(name)
        self._items.append((key, spelled, value.strip()))

    def prepend(self, name: str, value: str) -> None:
        """
        Insert a header line first (used for Via).

        @param name: the name, any spelling.
        @param value: the value.
        """
        self._items.insert(0, (header_key(name), canonical_name(name), value.strip()))

    def set(self, name: str, value: str) -> None:
        """
        Replace all lines of a header by one, at the place of the first.

        @param name: the name, any spelling.
        @param value: the value.
        """
        key = header_key(name)
        for i, (k, _, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (key, canonical_name(name), value.strip())
                self._items[i + 1 :] = [it for it in self._items[i + 1 :] if it[0] != key]
                return
        self.add(name, value)

    def set_all(self, name: str, values: list[str]) -> None:
        """
        Replace all lines of a header by one line per value, at the place of
        the first (used to rewrite the top Via).

        @param name: the name, any spelling.
        @param values: the new values, in order.
        """
        key = header_key(name)
        spelled = canonical_name(name)
        new = [(key, spelled, v.strip()) for v in values]
        for i, (k, _, _) in enumerate(self._items):
            if k == key:
                rest = [it for it in self._items[i:] if it[0] != key]
                self._items[i:] = new + rest
                return
        self._items.extend(new)

    def remove(self, name: str) -> None:
        """
        Remove every line of a header.

        @param name: the name, any spelling.
        """
        key = header_key(name)
        self._items = [it for it in self._items if it[0] != key]

    def get(self, name: str) -> str | None:
        """
        @param name: the name, any spelling.
        @return: the first value (first list element for list headers) or C{None}.
        @raise HeaderError: for an unterminated quote in a list header.
        """
        key = header_key(name)
        split = key in _LIST_HEADERS
        for k, _, value in self._items:
            if k == key:
                if not split:
                    return value
                values = split_list(value)
                if values:
                    return values[0]
        return None

    def get_all(self, name: str) -> list[str]:
        """
        @param name: the name, any spelling.
        @return: all values in order, comma lists split for list headers.
        @raise HeaderError: for an unterminated quote in a list header.
        """
        key = header_key(name)
        split = key in _LIST_HEADERS
        out: list[str] = []
        for k, _, value in self._items:
            if k == key:
                out.extend(split_list(value) if split else [value])
        return out

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = header_key(name)
        for k, _, _ in self._items:
            if k == key:
                return True
        return False

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """
        Iterate over C{(name as written, value)} pairs in order.
        """
        return ((n, v) for _, n, v in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Headers:
        """
        @return: an independent copy.
        """
        h = Headers()
        h._items = list(self._items)
        return h
