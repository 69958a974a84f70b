from __future__ import annotations

from django.urls import path

from gateway.api.views import WsTicketView

urlpatterns = [
    path("ws-tickets", WsTicketView.as_view(), name="ws-tickets"),
]
