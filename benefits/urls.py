from django.urls import path

from benefits import views

app_name = "benefits"

urlpatterns = [
    path("perks/", views.catalogue, name="catalogue"),
    path("perks/<slug:slug>/", views.perk_page, name="perk"),
    path("perks/<slug:slug>/redeem/", views.redeem, name="redeem"),
    path("my/redemptions/", views.my_redemptions, name="my_redemptions"),
    path("my/org/<slug:slug>/perks/", views.organisation_perks, name="organisation_perks"),
    path("my/org/<slug:slug>/offers/", views.offers, name="offers"),
    path("my/org/<slug:slug>/offers/new/", views.offer_form, name="offer_new"),
    path("my/org/<slug:slug>/offers/<int:pk>/", views.offer_form, name="offer_edit"),
    path("my/org/<slug:slug>/offers/<int:pk>/withdraw/", views.withdraw_offer, name="offer_withdraw"),
]
