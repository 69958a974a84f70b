from __future__ import annotations

from django.urls import path

from delivery.api import views

urlpatterns = [
    path("ws-tickets", views.WsTicketView.as_view(), name="ws-tickets"),
]
