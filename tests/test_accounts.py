"""Accounts: SwarmUI's roles and permission tiers (spec §7, §8.1), and users.

Tokens, RunPod keys, the master key and the CLI have their own files (test_account_tokens,
test_key_store, test_master_key, test_accounts_cli).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pg_support import StoreSpot, sqlite_only

from orchestrator.accounts import PERMISSIONS, Accounts, Role, User, permissions_of, role_has
from orchestrator.errors import AccountError, OrchestratorError


@pytest.fixture
async def accounts(spot: StoreSpot) -> AsyncIterator[Accounts]:
    env = {"SWARMPOD_MASTER_KEY": Fernet.generate_key().decode()}
    async with spot.open() as store, await Accounts.open(store, env=env) as opened:
        yield opened


# -- roles and tiers -----------------------------------------------------------------------------

GUEST = {"fundamental_generate_tab_access", "fundamental_model_access"}
USER = GUEST | {"basic_image_generation", "edit_user_settings", "model_params"}
POWERUSER = USER | {
    "use_runpod_serverless",
    "load_models_now",
    "view_backends_list",
    "control_mem_clean",
    "param_backend_id",
    "param_backend_type",
}
ADMIN = POWERUSER | {"control_model_refresh", "manage_users"}
OWNER_ONLY = {"shutdown", "automated_control"}


def test_the_roles_are_swarmuis_built_in_roles_most_powerful_first() -> None:
    assert [str(role) for role in Role] == ["owner", "admin", "poweruser", "user", "guest"]


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.GUEST, GUEST),
        (Role.USER, USER),
        (Role.POWERUSER, POWERUSER),
        (Role.ADMIN, ADMIN),
    ],
)
def test_each_role_has_every_permission_of_its_tier_and_of_the_weaker_tiers(
    role: Role, expected: set[str]
) -> None:
    assert set(permissions_of(role)) == expected
    assert all(role_has(role, permission) for permission in expected)
    assert not any(role_has(role, permission) for permission in set(PERMISSIONS) - expected)


def test_the_owner_has_star_first_then_every_permission() -> None:
    owned = permissions_of(Role.OWNER)
    assert owned[0] == "*" and set(owned[1:]) == set(PERMISSIONS) == ADMIN | OWNER_ONLY
    assert role_has(Role.OWNER, "a_permission_of_some_extension")


def test_a_permission_is_held_from_its_default_tier_up_and_never_below() -> None:
    roles = list(Role)
    for permission in PERMISSIONS.values():
        holders = [role for role in roles if role_has(role, permission.id)]
        assert holders == roles[: roles.index(permission.default) + 1], permission.id


def test_use_runpod_serverless_is_the_seeds_permission_for_powerusers_and_above() -> None:
    permission = PERMISSIONS["use_runpod_serverless"]
    assert permission.default is Role.POWERUSER and permission.group == "RunPodServerless"
    assert permission.display_name == "Use RunPod Serverless backends"
    assert [role_has(role, permission.id) for role in Role] == [True, True, True, False, False]


def test_the_route_permissions_of_the_spec_sit_in_their_tiers() -> None:
    defaults = {pid: PERMISSIONS[pid].default for pid in PERMISSIONS}
    assert defaults["basic_image_generation"] is Role.USER
    assert defaults["fundamental_generate_tab_access"] is Role.GUEST
    assert defaults["fundamental_model_access"] is Role.GUEST
    assert defaults["load_models_now"] is Role.POWERUSER
    assert defaults["view_backends_list"] is Role.POWERUSER
    assert defaults["control_mem_clean"] is Role.POWERUSER
    assert defaults["edit_user_settings"] is Role.USER
    assert defaults["control_model_refresh"] is Role.ADMIN
    assert defaults["manage_users"] is Role.ADMIN
    assert defaults["shutdown"] is Role.OWNER  # SwarmUI's NOBODY: the owner only, through '*'


def test_an_unknown_permission_is_refused_to_every_role_but_the_owner() -> None:
    assert [role_has(role, "no_such_permission") for role in Role] == [True] + [False] * 4


def test_the_permission_registry_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        PERMISSIONS["shutdown"] = PERMISSIONS["basic_image_generation"]  # type: ignore[index]


def test_a_user_has_what_its_role_has() -> None:
    ann = User("ann", Role.POWERUSER)
    assert ann.has("use_runpod_serverless") and not ann.has("manage_users")
    assert repr(ann) == "User(name='ann', role=<Role.POWERUSER: 'poweruser'>)"


# -- users ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_new_user_is_a_plain_user_unless_a_role_is_given(accounts: Accounts) -> None:
    assert await accounts.add_user("ann") == User("ann", Role.USER)
    assert await accounts.add_user("bob", Role.ADMIN) == User("bob", Role.ADMIN)
    assert await accounts.get_user("bob") == User("bob", Role.ADMIN)
    assert await accounts.get_user("nobody") is None


@pytest.mark.anyio
async def test_users_are_listed_by_name(accounts: Accounts) -> None:
    for name in ("cid", "ann", "bob"):
        await accounts.add_user(name)
    assert [user.name for user in await accounts.list_users()] == ["ann", "bob", "cid"]


@pytest.mark.parametrize("name", ["a", "ann", "ann.lee@example.org", "a-b_c", "x" * 64, "007"])
@pytest.mark.anyio
async def test_names_of_1_to_64_letters_digits_and_dot_at_dash_underscore_are_allowed(
    accounts: Accounts, name: str
) -> None:
    assert (await accounts.add_user(name)).name == name


@pytest.mark.parametrize(
    "name", ["", "a b", "x" * 65, "ann;drop", "ann\n", "änn", "../etc", "ann/bob", "a\x00"]
)
@sqlite_only  # refused before the database is asked
@pytest.mark.anyio
async def test_any_other_name_is_refused_saying_what_is_allowed(
    accounts: Accounts, name: str
) -> None:
    with pytest.raises(AccountError, match="not allowed: use 1 to 64 letters") as refused:
        await accounts.add_user(name)
    assert refused.value.user == name
    assert await accounts.list_users() == []


@pytest.mark.anyio
async def test_a_taken_name_is_refused_even_in_another_case(accounts: Accounts) -> None:
    await accounts.add_user("ann", Role.POWERUSER)
    with pytest.raises(AccountError, match="exists already") as refused:
        await accounts.add_user("ann", Role.ADMIN)
    assert refused.value.user == "ann" and isinstance(refused.value, OrchestratorError)
    with pytest.raises(AccountError, match=r"exists already \(as 'ann'\)"):
        await accounts.add_user("Ann")
    assert await accounts.list_users() == [User("ann", Role.POWERUSER)]


@pytest.mark.anyio
async def test_a_role_is_changed_and_kept(spot: StoreSpot) -> None:
    env = {"SWARMPOD_MASTER_KEY": Fernet.generate_key().decode()}
    async with spot.open() as store, await Accounts.open(store, env=env) as accounts:
        await accounts.add_user("ann")
        assert await accounts.set_role("ann", Role.GUEST) == User("ann", Role.GUEST)
    async with spot.open() as store, await Accounts.open(store, env=env) as again:
        assert await again.get_user("ann") == User("ann", Role.GUEST)


@pytest.mark.anyio
async def test_changing_or_removing_an_unknown_user_is_refused(accounts: Accounts) -> None:
    with pytest.raises(AccountError, match="no user 'bob'; see the users with") as refused:
        await accounts.set_role("bob", Role.USER)
    assert refused.value.user == "bob"
    with pytest.raises(AccountError, match="no user 'bob'"):
        await accounts.remove_user("bob")
    assert await accounts.get_user("bob") is None


@pytest.mark.anyio
async def test_a_removed_user_is_gone(accounts: Accounts) -> None:
    await accounts.add_user("ann")
    await accounts.add_user("bob")
    await accounts.remove_user("ann")
    assert await accounts.get_user("ann") is None and [
        u.name for u in await accounts.list_users()
    ] == ["bob"]
    await accounts.add_user("ann")  # the name is free again


@pytest.mark.anyio
async def test_the_store_shows_its_file_and_the_keys_source_but_no_key(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    async with await Accounts.open(
        tmp_path / "a.sqlite3", env={"SWARMPOD_MASTER_KEY": key}
    ) as accounts:
        shown = repr(accounts)
    assert "a.sqlite3" in shown and "env SWARMPOD_MASTER_KEY" in shown and key not in shown
