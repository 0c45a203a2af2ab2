from django.urls import path

from membership import webhooks

app_name = "billing"

urlpatterns = [
    path("stripe/webhook/", webhooks.stripe_webhook, name="stripe_webhook"),
    path("demo-checkout/<str:token>/", webhooks.demo_checkout, name="demo_checkout"),
    path("demo-card/<str:token>/", webhooks.demo_card, name="demo_card"),
]
