"""Jinja2 filter for writing values into systemd environment files (``EnvironmentFile=``).

Pure Python: the unit tests import this file without Ansible.

    REDIS_PASSWORD={{ redis_exporter_redis_password | systemd_env_quote }}   -> REDIS_PASSWORD="p\\"w$d"
"""

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - exercised when imported without Ansible

    class AnsibleFilterError(ValueError):
        """Stand-in used when Ansible is not installed (unit tests)."""


# Inside double quotes systemd keeps the character after a backslash when it is one of these
# (SHELL_NEED_ESCAPE in systemd's env-file parser) and keeps everything else as written.
_ESCAPED = '\\"`$'


def systemd_env_quote(value):
    """Return ``value`` double-quoted so that systemd's environment file parser reads it back unchanged.

    Backslash, double quote, backtick and dollar are escaped with a backslash. Line breaks and other control
    characters are refused: systemd would read a line break inside quotes as part of the value, but
    nothing that reads such a file line by line would, so a one-line value is the only safe kind.
    """
    if not isinstance(value, str):
        raise AnsibleFilterError(f"systemd_env_quote expects a string, got a {type(value).__name__}")
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in value):
        raise AnsibleFilterError("systemd_env_quote: the value contains a line break or another control character")
    return '"' + "".join("\\" + c if c in _ESCAPED else c for c in value) + '"'


class FilterModule:
    """systemd filters."""

    def filters(self):
        return {"systemd_env_quote": systemd_env_quote}
