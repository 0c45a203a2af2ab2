from django.urls import path

from cms.events import views

app_name = "events"

urlpatterns = [
    path("", views.my_events, name="mine"),
    path("register/<int:event_id>/", views.register, name="register"),
    path("<int:pk>/", views.registration, name="registration"),
    path("<int:pk>/calendar.ics", views.registration_calendar, name="calendar"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
    path("<int:pk>/pay/", views.pay, name="pay"),
    path("demo-checkout/<str:token>/", views.demo_checkout, name="demo_checkout"),
]
