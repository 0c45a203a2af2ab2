"""The engagement workspace's back-office URLs, under /admin/engagement/ (see wagtail_hooks)."""

from django.urls import path

from membership import engagement_views as views

app_name = "engagement"
urlpatterns = [
    path("", views.WorkspaceView.as_view(), name="workspace"),
    path("at-risk/", views.AtRiskQueueView.as_view(), name="at_risk"),
    path("at-risk/<int:pk>/follow-up/", views.AtRiskFollowUpView.as_view(), name="at_risk_follow_up"),
    path("settings/", views.SettingsView.as_view(), name="settings"),
    path("import/", views.ImportView.as_view(), name="import"),
    path("import/<int:pk>/", views.ImportDetailView.as_view(), name="import_detail"),
    path("import/<int:pk>/confirm/", views.ImportConfirmView.as_view(), name="import_confirm"),
    path("export/", views.ExportView.as_view(), name="export"),
]
