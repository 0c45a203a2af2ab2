from django.urls import path

from membership import billing_views, views

app_name = "membership"

urlpatterns = [
    path("", views.portal, name="portal"),
    path("organisations/new/", views.create_organisation, name="create"),
    path("join/", views.join, name="ask_to_join"),
    path("invitations/<str:key>/", views.invitation, name="invitation"),
    path("org/<slug:slug>/", views.overview, name="overview"),
    path("org/<slug:slug>/profile/", views.profile, name="profile"),
    path("org/<slug:slug>/colleagues/", views.colleagues, name="colleagues"),
    path("org/<slug:slug>/colleagues/invite/", views.invite, name="invite"),
    path("org/<slug:slug>/colleagues/hand-over/", views.hand_over, name="hand_over"),
    path("org/<slug:slug>/colleagues/<int:pk>/role/", views.change_role, name="change_role"),
    path("org/<slug:slug>/colleagues/<int:pk>/remove/", views.remove, name="remove"),
    path(
        "org/<slug:slug>/invitations/<int:pk>/resend/",
        views.invitation_action,
        {"action": "resend"},
        name="resend_invitation",
    ),
    path(
        "org/<slug:slug>/invitations/<int:pk>/revoke/",
        views.invitation_action,
        {"action": "revoke"},
        name="revoke_invitation",
    ),
    path("org/<slug:slug>/join-requests/<int:pk>/", views.decide_join_request, name="decide_join_request"),
    path("org/<slug:slug>/leave/", views.leave, name="leave"),
    path("org/<slug:slug>/billing/", billing_views.billing_page, name="billing"),
    path("org/<slug:slug>/billing/start/", billing_views.start_membership, name="start_membership"),
    path("org/<slug:slug>/billing/card/", billing_views.manage_card, name="manage_card"),
    path("org/<slug:slug>/billing/tier/", billing_views.change_tier, name="change_tier"),
    path("org/<slug:slug>/billing/tier/keep/", billing_views.keep_tier, name="keep_tier"),
    path("org/<slug:slug>/billing/pay-by-invoice/", billing_views.switch_to_invoice, name="switch_to_invoice"),
    path("org/<slug:slug>/billing/pay-by-card/", billing_views.switch_to_card, name="switch_to_card"),
    path("org/<slug:slug>/billing/cancel/", billing_views.cancel_membership, name="cancel_membership"),
    path("org/<slug:slug>/billing/resume/", billing_views.resume_membership, name="resume_membership"),
    path("org/<slug:slug>/billing/withdraw/", billing_views.withdraw_application, name="withdraw_application"),
    path("org/<slug:slug>/billing/pay-online/", billing_views.pay_online, name="pay_online"),
]
