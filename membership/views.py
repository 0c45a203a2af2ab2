"""The member portal under /my/: every page is scoped to organisations the requesting user belongs to.

An organisation the user does not belong to is a 404, whatever the URL or the form says; actions that
need the admin role are refused (403) to members. The views only parse, check and call a service.
"""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.ratelimit import limit_user
from membership import services
from membership.forms import InviteForm, JoinRequestForm, OrganisationForm
from membership.models import Invitation, JoinRequest, Organisation, OrganisationMember
from membership.services import MembershipError

CURRENT_ORGANISATION = "current_organisation"
# Each invitation sends an e-mail to an address the admin typed, so how many go out is limited (RATE_LIMITS).
INVITATIONS_LIMITED = "You have sent a lot of invitations in a short time, so this one was not sent."


def organisation_view(admin_only: bool = False):
    """Resolve ``slug`` to one of the user's organisations (404 otherwise) and pass it with their membership."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request: HttpRequest, slug: str, *args, **kwargs) -> HttpResponse:
            organisation = get_object_or_404(Organisation.objects.for_user(request.user), slug=slug)
            membership = services.membership_of(organisation, request.user)
            if admin_only and not membership.is_admin:
                raise PermissionDenied("Only an admin of this organisation can do that.")
            request.session[CURRENT_ORGANISATION] = organisation.pk
            return view(request, organisation, membership, *args, **kwargs)

        return wrapper

    return decorator


# Pages other apps add to the portal's menu: (label, URL name taking the organisation's slug, admins only).
# They register in their AppConfig.ready, so membership never imports them.
PORTAL_LINKS: list[tuple[str, str, bool]] = []


def register_portal_link(label: str, url_name: str, *, admin_only: bool = False) -> None:
    if (label, url_name, admin_only) not in PORTAL_LINKS:
        PORTAL_LINKS.append((label, url_name, admin_only))


def _portal_links(request: HttpRequest, organisation: Organisation, is_admin: bool) -> list[dict]:
    links = []
    for label, url_name, admin_only in PORTAL_LINKS:
        if admin_only and not is_admin:
            continue
        url = reverse(url_name, args=[organisation.slug])
        links.append({"label": label, "url": url, "current": request.path == url})
    return links


def portal_context(request: HttpRequest, organisation: Organisation, membership: OrganisationMember, **extra):
    return {
        "organisation": organisation,
        "membership": membership,
        "is_admin": membership.is_admin,
        "my_organisations": Organisation.objects.for_user(request.user).only("name", "slug"),
        "portal_links": _portal_links(request, organisation, membership.is_admin),
        **extra,
    }


def _refused(request: HttpRequest, error: MembershipError) -> None:
    messages.error(request, str(error))


@login_required
def portal(request: HttpRequest) -> HttpResponse:
    """Send the user to the organisation they last worked in, or help them find or create one."""
    mine = Organisation.objects.for_user(request.user)
    current = mine.filter(pk=request.session.get(CURRENT_ORGANISATION)).first() or mine.first()
    if current:
        return redirect("membership:overview", current.slug)
    return render(
        request,
        "membership/portal/start.html",
        {
            "invitations": _invitations_for(request.user),
            "matching": services.organisations_matching_domains(request.user),
            "pending_requests": request.user.join_requests.filter(status=JoinRequest.Status.PENDING).select_related(
                "organisation"
            ),
        },
    )


def _invitations_for(user) -> list[Invitation]:
    from allauth.account.models import EmailAddress

    addresses = EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)
    query = Q()
    for address in addresses:
        query |= Q(email__iexact=address)
    if not query:
        return []
    return list(Invitation.objects.pending().filter(query).select_related("organisation"))


@login_required
def create_organisation(request: HttpRequest) -> HttpResponse:
    form = OrganisationForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items()}
        organisation = services.create_organisation(request.user, **data)
        messages.success(request, f"{organisation} is set up, and you are its admin. Now invite your colleagues.")
        return redirect("membership:colleagues", organisation.slug)
    return render(request, "membership/portal/create.html", {"form": form})


@login_required
def join(request: HttpRequest) -> HttpResponse:
    """Ask to join an organisation that lists the domain of one of the user's verified addresses."""
    matching = services.organisations_matching_domains(request.user)
    form = JoinRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # Only an organisation offered to this user may be asked; any other id in the form is refused.
        organisation = next((o for o in matching if o.pk == form.cleaned_data["organisation"]), None)
        if organisation is None:
            messages.error(request, "You cannot ask to join that organisation with your verified addresses.")
            return redirect("membership:ask_to_join")
        try:
            services.request_to_join(organisation, request.user, form.cleaned_data["message"])
        except MembershipError as error:
            _refused(request, error)
        else:
            messages.success(request, f"Your request has gone to the admins of {organisation}.")
        return redirect("membership:portal")
    return render(request, "membership/portal/join.html", {"matching": matching, "form": form})


@organisation_view()
def overview(request: HttpRequest, organisation: Organisation, membership: OrganisationMember) -> HttpResponse:
    counts = (
        OrganisationMember.objects.active()
        .filter(organisation=organisation)
        .aggregate(people=Count("pk"), admins=Count("pk", filter=Q(role=OrganisationMember.Role.ADMIN)))
    )
    context = portal_context(
        request,
        organisation,
        membership,
        counts=counts,
        pending_invitations=organisation.invitations.pending().count(),
        pending_requests=organisation.join_requests.filter(status=JoinRequest.Status.PENDING).count(),
        seat_limit=services.seat_limit(organisation),
        seats_taken=organisation.seats_taken(),
        specialisms=organisation.specialisms.all(),
    )
    return render(request, "membership/portal/overview.html", context)


@organisation_view(admin_only=True)
def profile(request: HttpRequest, organisation: Organisation, membership: OrganisationMember) -> HttpResponse:
    """Edit the profile; "Preview" shows the directory card as it would look, without saving."""
    form = OrganisationForm(request.POST or None, request.FILES or None, instance=organisation, user=request.user)
    preview = organisation
    preview_specialisms = organisation.specialisms.all()
    if request.method == "POST" and form.is_valid():
        if "preview" in request.POST:
            preview = form.instance  # holds the typed values, unsaved
            preview_specialisms = form.cleaned_data["specialisms"]
        else:
            try:
                organisation = services.update_organisation(organisation, request.user, form)
            except MembershipError as error:
                _refused(request, error)
            else:
                messages.success(request, "The profile is saved.")
                return redirect("membership:profile", organisation.slug)
    elif request.method == "POST":
        preview = Organisation.objects.get(pk=organisation.pk)  # invalid input never reaches the preview
    context = portal_context(
        request,
        Organisation.objects.get(pk=organisation.pk),
        membership,
        form=form,
        preview=preview,
        preview_specialisms=preview_specialisms,
    )
    return render(request, "membership/portal/profile.html", context)


def _colleagues_page(request, organisation, membership, invite_form: InviteForm, status: int = 200):
    people = list(
        OrganisationMember.objects.active()
        .filter(organisation=organisation)
        .select_related("user")
        .order_by("role", "user__first_name", "user__email")
    )
    context = portal_context(
        request,
        organisation,
        membership,
        people=people,
        admin_count=sum(1 for p in people if p.is_admin),
        invite_form=invite_form,
    )
    if membership.is_admin:
        context["invitations"] = organisation.invitations.filter(
            accepted_at__isnull=True, revoked_at__isnull=True
        ).select_related("invited_by")
        context["join_requests"] = organisation.join_requests.filter(status=JoinRequest.Status.PENDING).select_related(
            "user"
        )
        context["seat_limit"] = services.seat_limit(organisation)
        context["seats_taken"] = organisation.seats_taken()
    return render(request, "membership/portal/colleagues.html", context, status=status)


@organisation_view()
def colleagues(request: HttpRequest, organisation: Organisation, membership: OrganisationMember) -> HttpResponse:
    return _colleagues_page(request, organisation, membership, InviteForm())


@organisation_view(admin_only=True)
@require_POST
def invite(request: HttpRequest, organisation: Organisation, membership: OrganisationMember) -> HttpResponse:
    if refused := limit_user(request, "invite_colleague", INVITATIONS_LIMITED):
        return refused
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _colleagues_page(request, organisation, membership, form, status=400)
    try:
        invitation = services.invite_colleague(
            organisation, request.user, form.cleaned_data["email"], form.cleaned_data["role"]
        )
    except MembershipError as error:
        _refused(request, error)
    else:
        messages.success(request, f"An invitation is on its way to {invitation.email}.")
    return redirect("membership:colleagues", organisation.slug)


@organisation_view(admin_only=True)
@require_POST
def invitation_action(
    request: HttpRequest, organisation: Organisation, membership: OrganisationMember, pk: int, action: str
) -> HttpResponse:
    invitation = get_object_or_404(Invitation, pk=pk, organisation=organisation)
    if action == "resend" and (refused := limit_user(request, "invite_colleague", INVITATIONS_LIMITED)):
        return refused
    try:
        if action == "resend":
            services.resend_invitation(invitation, request.user)
            messages.success(request, f"The invitation to {invitation.email} has been sent again.")
        else:
            services.revoke_invitation(invitation, request.user)
            messages.success(request, f"The invitation to {invitation.email} is withdrawn.")
    except MembershipError as error:
        _refused(request, error)
    return redirect("membership:colleagues", organisation.slug)


@organisation_view(admin_only=True)
@require_POST
def decide_join_request(
    request: HttpRequest, organisation: Organisation, membership: OrganisationMember, pk: int
) -> HttpResponse:
    join_request = get_object_or_404(JoinRequest, pk=pk, organisation=organisation)
    decision = request.POST.get("decision")
    if decision not in ("approve", "decline"):  # anything else decides nothing
        messages.error(request, "Choose approve or decline.")
        return redirect("membership:colleagues", organisation.slug)
    approve = decision == "approve"
    try:
        services.decide_join_request(join_request, request.user, approve=approve)
    except MembershipError as error:
        _refused(request, error)
    else:
        messages.success(request, f"{join_request.user} {'has joined' if approve else 'was declined'}.")
    return redirect("membership:colleagues", organisation.slug)


@organisation_view(admin_only=True)
@require_POST
def change_role(
    request: HttpRequest, organisation: Organisation, membership: OrganisationMember, pk: int
) -> HttpResponse:
    colleague = get_object_or_404(OrganisationMember.objects.active(), pk=pk, organisation=organisation)
    role = request.POST.get("role")
    if role not in OrganisationMember.Role.values:
        messages.error(request, "Choose admin or member.")
        return redirect("membership:colleagues", organisation.slug)
    try:
        services.change_role(colleague, request.user, role)
    except MembershipError as error:
        _refused(request, error)
    else:
        messages.success(request, f"{colleague.user} is now {OrganisationMember.Role(role).label.lower()}.")
    return redirect("membership:colleagues", organisation.slug)


def _id(value: str) -> int:
    """A row id from a form, or 0 (matching nothing): "²" passes ``isdigit`` but is no number for ``int``."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else 0


@organisation_view(admin_only=True)
@require_POST
def hand_over(request: HttpRequest, organisation: Organisation, membership: OrganisationMember) -> HttpResponse:
    colleague = get_object_or_404(
        OrganisationMember.objects.active(), pk=_id(request.POST.get("to", "")), organisation=organisation
    )
    try:
        services.hand_over_admin(organisation, request.user, colleague)
    except MembershipError as error:
        _refused(request, error)
    else:
        messages.success(request, f"{colleague.user} is now the admin; you are a member.")
    return redirect("membership:colleagues", organisation.slug)


@organisation_view(admin_only=True)
@require_POST
def remove(request: HttpRequest, organisation: Organisation, membership: OrganisationMember, pk: int) -> HttpResponse:
    colleague = get_object_or_404(OrganisationMember.objects.active(), pk=pk, organisation=organisation)
    try:
        services.remove_member(colleague, request.user)
    except MembershipError as error:
        _refused(request, error)
    else:
        messages.success(request, f"{colleague.user} no longer belongs to {organisation}.")
    return redirect("membership:colleagues", organisation.slug)


@organisation_view()
def leave(request: HttpRequest, organisation: Organisation, membership: OrganisationMember) -> HttpResponse:
    if request.method == "POST":
        try:
            services.remove_member(membership, request.user)
        except MembershipError as error:
            _refused(request, error)
            return redirect("membership:leave", organisation.slug)
        request.session.pop(CURRENT_ORGANISATION, None)
        messages.success(request, f"You have left {organisation}.")
        return redirect("membership:portal")
    return render(request, "membership/portal/leave.html", portal_context(request, organisation, membership))


def invitation(request: HttpRequest, key: str) -> HttpResponse:
    """The link in an invitation e-mail: accept it, or log in or sign up with the invited address first."""
    try:
        found = services.find_invitation(key)
    except MembershipError as error:
        return render(request, "membership/portal/invitation.html", {"error": str(error)}, status=404)
    if found.status != "pending":
        problem = {
            "accepted": "This invitation has already been used.",
            "revoked": "This invitation has been withdrawn. Ask an admin of the organisation for a new one.",
            "expired": "This invitation has expired. Ask an admin of the organisation to send it again.",
        }[found.status]
        return render(request, "membership/portal/invitation.html", {"error": problem}, status=410)
    if not request.user.is_authenticated:
        # The link reached this address, so sign-up with it needs no second verification e-mail.
        request.session["account_verified_email"] = found.email
        return render(
            request,
            "membership/portal/invitation.html",
            {"invitation": found, "next": reverse("membership:invitation", args=[key])},
        )
    if request.method == "POST":
        try:
            joined = services.accept_invitation(found, request.user)
        except MembershipError as error:
            _refused(request, error)
            return redirect("membership:invitation", key)
        messages.success(request, f"Welcome to {joined.organisation}.")
        return redirect("membership:overview", joined.organisation.slug)
    return render(request, "membership/portal/invitation.html", {"invitation": found, "key": key})
