from django.urls import path

from . import views

urlpatterns = [
    path("templates", views.TemplateListView.as_view(), name="templates"),
    path("templates/<str:name>", views.TemplateDetailView.as_view(), name="template-detail"),
]
