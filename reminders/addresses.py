"""Email addresses as units and leaders write them, checked and stored the way every relay accepts them.

Local parts must be ASCII (SMTPUTF8 is rare on government relays); an internationalised domain is stored as
punycode; a domain label that mixes scripts (`exаmple.org` with a Cyrillic а) is a look-alike and refused.
"""

from __future__ import annotations

import re
import unicodedata

_EMAIL_SEPARATORS = re.compile(r"[;,、\s]+")  # applied after NFKC, which folds ；，and full-width space
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TLD = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
# Scripts that are written together in one name (Chinese, Japanese and Korean domains mix Han with Latin).
_MIXABLE = frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO"})
_SCRIPT_NAMES = {"LATIN": "拉丁字母", "CYRILLIC": "西里尔字母", "GREEK": "希腊字母", "ARMENIAN": "亚美尼亚字母",
                 "CJK": "汉字", "CHEROKEE": "切罗基字母"}


def parse_emails(value: str) -> list[str]:
    """Split a cell of addresses into their stored form; full-width characters are folded (NFKC), duplicates
    dropped. Raises ValueError naming the address that is refused."""
    addresses: list[str] = []
    seen: set[str] = set()
    for written in filter(None, _EMAIL_SEPARATORS.split(unicodedata.normalize("NFKC", value))):
        address = stored_address(written)
        if address.casefold() not in seen:
            seen.add(address.casefold())
            addresses.append(address)
    if not addresses:
        raise ValueError("缺少邮箱地址 (no email address)")
    return addresses


def stored_address(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if at and local and not local.isascii():
        raise ValueError(f"邮箱地址 “{address}” 的用户名（@ 之前）含有非 ASCII 字符，邮件服务器不接受 "
                         "(the part before @ must be ASCII)")
    if at and (mixed := _mixed_scripts(domain)):
        (first, second), char = mixed
        raise ValueError(
            f"邮箱地址 “{address}” 的域名混用了{_SCRIPT_NAMES.get(first, first)}和{_SCRIPT_NAMES.get(second, second)}"
            f"（“{char}” U+{ord(char):04X}），疑似仿冒的域名，请核对 "
            f"(look-alike domain: {first.title()} and {second.title()} letters mixed)")
    ascii_domain = _ascii_domain(address, local, domain) if at else None
    if ascii_domain is None:
        raise ValueError(f"无效的邮箱地址 “{address}” (invalid email address)")
    return address if domain.isascii() else f"{local}@{ascii_domain}"


def _ascii_domain(address: str, local: str, domain: str) -> str | None:
    if len(local) > 64 or len(address) > 254 or not _LOCAL_PART.fullmatch(local):
        return None
    return _as_ascii(domain)


def _as_ascii(domain: str) -> str | None:
    """The domain in the ASCII form mails carry (punycode for an internationalised one), or None if it is none."""
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    *names, tld = ascii_domain.split(".")
    valid_labels = all(_DOMAIN_LABEL.fullmatch(label) for label in names)
    if names and valid_labels and len(ascii_domain) <= 253 and _TLD.fullmatch(tld) is not None:
        return ascii_domain
    return None


def stored_domain(domain: str) -> str:
    """A domain alone (a Message-ID's, a sender's) checked as `stored_address` checks an address's; ValueError."""
    if mixed := _mixed_scripts(domain):
        (first, second), char = mixed
        raise ValueError(
            f"域名 “{domain}” 混用了{_SCRIPT_NAMES.get(first, first)}和{_SCRIPT_NAMES.get(second, second)}"
            f"（“{char}” U+{ord(char):04X}），疑似仿冒的域名，请核对 "
            f"(look-alike domain: {first.title()} and {second.title()} letters mixed)")
    ascii_domain = _as_ascii(domain)
    if ascii_domain is None:
        raise ValueError(f"域名 “{domain}” 无效，应为 example.org 这样的域名 (not a valid domain)")
    return ascii_domain if not domain.isascii() else domain


def _mixed_scripts(domain: str) -> tuple[tuple[str, str], str] | None:
    """The first label mixing scripts that are not written together: ((script, other script), the odd letter)."""
    for label in domain.split("."):
        letters = [(unicodedata.name(char, "UNKNOWN").split()[0], char) for char in label if char.isalpha()]
        for script, char in letters[1:]:
            first = letters[0][0]
            if script != first and not {first, script} <= _MIXABLE:
                return (first, script), char
    return None
