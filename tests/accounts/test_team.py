"""The team page: invitations by email, accepting them, roles, removal, and who may do what."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import Invitation, Membership, User
from accounts.roles import RoleRefused
from accounts.services import membership_role_change, membership_set, user_upsert
from accounts.tenancy import market_scope
from tests.sessions import PASSWORD, login, member

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-long-unusual-passphrase-42"


def invite(client: Client, email: str, role: str = "analyst"):
    return client.post("/portal/team/", {"email": email, "role": role})


def emailed_link() -> str:
    """The path of the invitation link in the last email sent."""
    match = re.search(r"http://testserver(/invite/[\w-]+/)", mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(1)


def members(slug: str) -> dict[str, str]:
    return {m.user.email: m.role for m in Membership.objects.filter(organization__slug=slug).select_related("user")}


def invitations() -> list[tuple[str, str, bool, bool]]:
    with market_scope():
        return [
            (i.email, i.role, i.accepted_at is not None, i.cancelled_at is not None)
            for i in Invitation.objects.order_by("pk")
        ]


def test_an_owner_invites_by_email_and_the_new_user_accepts_with_a_password(orgs):
    owner = login("owner@acme.test")

    sent = invite(owner, "New.Person@Example.com", "manager")

    assert sent.status_code == 200
    assert sent["Cache-Control"] == "no-store"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new.person@example.com"]
    assert message.subject == "Join Acme Insurance on Gavel"
    assert "as manager" in message.body and "owner@acme.test" in message.body
    link = emailed_link()
    assert link in sent.content.decode()  # shown once to the owner too
    assert "new.person@example.com" in owner.get("/portal/team/").content.decode()  # pending
    assert link not in owner.get("/portal/team/").content.decode()  # but the link is not shown again
    with market_scope():
        stored = Invitation.objects.get()
    assert link.split("/")[2] not in stored.token_hash  # stored hashed, never raw

    guest = Client()
    page = guest.get(link)
    assert page.status_code == 200
    assert "Join Acme Insurance" in page.content.decode() and "manager" in page.content.decode()
    accepted = guest.post(link, {"name": "New Person", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert accepted.status_code == 302 and accepted["Location"] == "/portal/"
    assert members("acme")["new.person@example.com"] == "manager"
    home = guest.get("/portal/")
    assert "Welcome to Acme Insurance: you are a member as manager." in home.content.decode()
    assert invitations() == [("new.person@example.com", "manager", True, False)]
    assert Client().login(username="new.person@example.com", password=NEW_PASSWORD)


def test_a_used_link_gets_a_clear_page_and_changes_nothing(orgs):
    invite(login("owner@acme.test"), "a@example.com")
    link = emailed_link()
    Client().post(link, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    before = members("acme")

    for again in (Client().get(link), Client().post(link, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})):
        assert again.status_code == 410
        assert "This invitation was already used" in again.content.decode()
    assert members("acme") == before


def test_an_expired_link_gets_a_clear_page_and_changes_nothing(orgs):
    invite(login("owner@acme.test"), "late@example.com")
    link = emailed_link()

    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        page = Client().get(link)
        posted = Client().post(link, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert page.status_code == posted.status_code == 410
    assert "This invitation has expired" in page.content.decode()
    assert "late@example.com" not in members("acme")
    assert not user_exists("late@example.com")


def user_exists(email: str) -> bool:
    return User.objects.filter(email=email).exists()


@pytest.mark.parametrize(
    "tamper", [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: t[:10], lambda t: "x" * 300]
)
def test_a_tampered_link_is_not_found_and_changes_nothing(orgs, tamper):
    invite(login("owner@acme.test"), "t@example.com")
    token = emailed_link().split("/")[2]

    page = Client().get(f"/invite/{tamper(token)}/")
    posted = Client().post(f"/invite/{tamper(token)}/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert page.status_code == posted.status_code == 404
    assert "This invitation link is not valid" in page.content.decode()
    assert not user_exists("t@example.com")
    assert invitations() == [("t@example.com", "analyst", False, False)]


def test_a_bad_password_is_shown_by_the_field_and_nothing_is_created(orgs):
    invite(login("owner@acme.test"), "p@example.com")
    link = emailed_link()

    short = Client().post(link, {"name": "Pat", "password1": "short", "password2": "short"})
    differ = Client().post(link, {"name": "Pat", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"})

    assert short.status_code == differ.status_code == 400
    assert "too short" in str(short.context["form"].errors["password1"])
    assert differ.context["form"].errors["password2"] == ["The two passwords differ."]
    assert 'value="Pat"' in short.content.decode()  # what was typed is kept
    assert not user_exists("p@example.com")
    assert invitations() == [("p@example.com", "analyst", False, False)]


def test_an_existing_user_logs_in_and_accepts(orgs):
    user_upsert(email="owner@leadgen.test", password=PASSWORD)  # already a user (of LeadGen)
    invite(login("owner@acme.test"), "owner@leadgen.test", "analyst")
    link = emailed_link()

    anonymous = Client().get(link)
    assert "already has a Gavel account" in anonymous.content.decode()
    assert f"/login/?next={link}" in anonymous.content.decode().replace("%2F", "/")
    # Not someone else's account: a user logged in as another email is told so.
    other = login("charlie@charlie.test").post(link)
    assert other.status_code == 400 and "you are logged in as charlie@charlie.test" in other.content.decode()

    client = login("owner@leadgen.test")
    assert client.post(link).status_code == 302
    assert members("acme")["owner@leadgen.test"] == "analyst"
    assert members("leadgen")["owner@leadgen.test"] == "owner"  # still the owner of LeadGen
    assert client.session["gavel_organization_id"] == orgs["acme"].pk  # lands in the new organization


def test_inviting_a_member_or_a_bad_address_is_refused_by_the_field(orgs):
    owner = login("owner@acme.test")

    for email, expected in (
        ("owner@acme.test", "owner@acme.test is already a member"),
        ("not-an-email", "Enter a valid email address."),
    ):
        response = invite(owner, email)
        assert response.status_code == 400
        assert expected in str(response.context["invite_form"].errors["email"])
        assert f'value="{email}"' in response.content.decode()  # kept
    assert invite(owner, "x@example.com", "emperor").status_code == 400
    assert mail.outbox == [] and invitations() == []


def test_a_new_invitation_replaces_the_pending_one_and_an_owner_can_cancel(orgs):
    owner = login("owner@acme.test")
    invite(owner, "r@example.com", "analyst")
    first = emailed_link()
    invite(owner, "r@example.com", "manager")
    second = emailed_link()

    assert Client().get(first).status_code == 410  # replaced
    with market_scope():
        pending = Invitation.objects.get(cancelled_at__isnull=True)
    assert owner.post(f"/portal/team/invitations/{pending.pk}/cancel/").status_code == 302
    page = Client().get(second)
    assert page.status_code == 410 and "This invitation was cancelled" in page.content.decode()
    assert invitations() == [("r@example.com", "analyst", False, True), ("r@example.com", "manager", False, True)]


def test_an_owner_changes_a_role_and_removes_a_member(orgs):
    member("m@acme.test", "acme", "analyst")
    owner = login("owner@acme.test")
    target = Membership.objects.get(user__email="m@acme.test")

    changed = owner.post(f"/portal/team/members/{target.pk}/role/", {"role": "manager"}, follow=True)
    assert "m@acme.test is now manager." in changed.content.decode()
    assert members("acme")["m@acme.test"] == "manager"

    removed = owner.post(f"/portal/team/members/{target.pk}/remove/", follow=True)
    assert "m@acme.test is no longer a member of Acme Insurance." in removed.content.decode()
    assert "m@acme.test" not in members("acme")
    assert login("m@acme.test").get("/portal/team/").status_code == 403  # no organization any more


def test_the_last_owner_cannot_be_demoted_or_removed(orgs):
    owner = login("owner@acme.test")
    me = Membership.objects.get(user__email="owner@acme.test")

    demoted = owner.post(f"/portal/team/members/{me.pk}/role/", {"role": "analyst"})
    removed = owner.post(f"/portal/team/members/{me.pk}/remove/")

    assert demoted.status_code == removed.status_code == 409
    assert "owner@acme.test is the last owner: make another member an owner first." in demoted.content.decode()
    assert "owner@acme.test is the last owner and cannot be removed." in removed.content.decode()
    assert members("acme") == {"owner@acme.test": "owner"}

    # With a second owner, the first may step down.
    member("second@acme.test", "acme", "owner")
    assert owner.post(f"/portal/team/members/{me.pk}/role/", {"role": "manager"}).status_code == 302
    assert members("acme") == {"owner@acme.test": "manager", "second@acme.test": "owner"}


def test_a_demoted_owner_acting_on_a_stale_page_is_refused_by_the_service(orgs):
    member("second@acme.test", "acme", "owner")
    stale = Membership.objects.get(user__email="owner@acme.test")  # loaded as an owner
    Membership.objects.filter(pk=stale.pk).update(role="analyst")  # demoted meanwhile
    target = Membership.objects.get(user__email="second@acme.test")

    with pytest.raises(RoleRefused):
        membership_role_change(actor=stale, membership_id=target.pk, role="analyst")
    assert members("acme")["second@acme.test"] == "owner"


@pytest.mark.parametrize("role", ["manager", "analyst"])
def test_managers_and_analysts_read_the_team_and_are_refused_every_change(orgs, role):
    client = member("someone@acme.test", "acme", role)
    membership_set(user=user_upsert(email="other@acme.test"), organization=orgs["acme"], role="analyst")
    invite(login("owner@acme.test"), "pending@example.com")
    mail.outbox.clear()
    with market_scope():
        pending = Invitation.objects.get()
    other = Membership.objects.get(user__email="other@acme.test")
    owner = Membership.objects.get(user__email="owner@acme.test")
    before_members, before_invitations = members("acme"), invitations()

    page = client.get("/portal/team/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Read-only: only an owner invites" in html
    assert "other@acme.test" in html and "pending@example.com" in html
    assert "Send invitation" not in html and "Change role" not in html and "Remove" not in html

    for url, data in (
        ("/portal/team/", {"email": "x@example.com", "role": "owner"}),
        (f"/portal/team/members/{other.pk}/role/", {"role": "owner"}),
        (f"/portal/team/members/{owner.pk}/role/", {"role": "analyst"}),
        (f"/portal/team/members/{other.pk}/remove/", {}),
        (f"/portal/team/invitations/{pending.pk}/cancel/", {}),
    ):
        refused = client.post(url, data)
        assert refused.status_code == 403, url
        assert "This page needs the <strong>owner</strong> role" in refused.content.decode()
    assert members("acme") == before_members and invitations() == before_invitations and mail.outbox == []


def test_an_outsider_gets_404_for_another_organizations_members_and_invitations(orgs):
    invite(login("owner@acme.test"), "pending@example.com")
    with market_scope():
        pending = Invitation.objects.get()
    acme_owner = Membership.objects.get(user__email="owner@acme.test")
    charlie = login("charlie@charlie.test")  # an owner, of another organization
    before_members, before_invitations = members("acme"), invitations()

    assert charlie.post(f"/portal/team/members/{acme_owner.pk}/role/", {"role": "analyst"}).status_code == 404
    assert charlie.post(f"/portal/team/members/{acme_owner.pk}/remove/").status_code == 404
    assert charlie.post(f"/portal/team/invitations/{pending.pk}/cancel/").status_code == 404
    html = charlie.get("/portal/team/").content.decode()
    assert "owner@acme.test" not in html and "pending@example.com" not in html
    assert members("acme") == before_members and invitations() == before_invitations


def test_the_team_page_needs_a_login(db):
    response = Client().get("/portal/team/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_operator_sees_invitations_in_the_admin(orgs, operator_client):
    invite(login("owner@acme.test"), "seen@example.com")
    page = operator_client.get("/admin/accounts/invitation/")
    assert page.status_code == 200 and "seen@example.com" in page.content.decode()
