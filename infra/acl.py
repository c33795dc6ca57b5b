"""The Redis ACL users, as the valkey-serverless engine's ElastiCache user group declares them.

One source: the application's rules are the redis role's ``redis_app_acl_rules``
(ansible/roles/redis/defaults/main.yml), read from there; the admin's and ``default``'s rules are those the role's
users.acl.j2 writes (a test renders the template and compares every user's rules with these,
tests/unit/infra/test_serverless.py). The monitor user is the host's exporter's: a serverless cache has no exporter,
so it has no monitor user.

Pure: no Pulumi, no AWS.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.role_defaults import role_default

# What users.acl.j2 gives the admin and `default` (no password, no command, no key: nobody logs in as it).
ADMIN_RULES = "~* &* +@all"
DEFAULT_USER = "default"
DEFAULT_RULES = "resetkeys resetchannels -@all"
# ElastiCache's user and group ids: a letter, then letters, digits and single hyphens, at most 40 characters.
MAX_ID = 40


@dataclass(frozen=True)
class AclUser:
    purpose: str  # admin, app, default
    user_name: str  # what clients AUTH as
    enabled: bool
    rules: str  # Redis ACL rules, without on/off and without a password

    @property
    def access_string(self) -> str:
        """ElastiCache's access string: on/off, then the rules (passwords are set beside it, never in it)."""
        return f"{'on' if self.enabled else 'off'} {self.rules}"

    @property
    def password_purpose(self) -> str | None:
        """The SSM parameter purpose (infra/parameters.py) that holds its password; None for `default`."""
        return None if self.purpose == DEFAULT_USER else f"redis-{self.purpose}-password"


def rules(text: str) -> str:
    """ACL rules as one line with single spaces (the role's folded YAML may wrap them)."""
    return " ".join(str(text).split())


def serverless_users() -> tuple[AclUser, ...]:
    """The users of the serverless cache: the role's admin and app users under the role's names, and `default` off."""
    return (
        AclUser("admin", str(role_default("redis", "redis_admin_user")), True, ADMIN_RULES),
        AclUser(
            "app",
            str(role_default("redis", "redis_app_user")),
            True,
            rules(role_default("redis", "redis_app_acl_rules")),
        ),
        AclUser(DEFAULT_USER, DEFAULT_USER, False, DEFAULT_RULES),
    )


def user_id(stack: str, purpose: str) -> str:
    """An ElastiCache user id unique to the stack (ids are per account and region; names may repeat across groups)."""
    return _elasticache_id(f"sr-{stack}-{purpose}")


def user_group_id(stack: str) -> str:
    return _elasticache_id(f"sr-{stack}-users")


def _elasticache_id(text: str) -> str:
    if len(text) > MAX_ID or "--" in text or text.endswith("-") or not text[0].isalpha():
        raise ValueError(f"{text!r} is not an ElastiCache user or group id (a letter first, {MAX_ID} characters)")
    return text
