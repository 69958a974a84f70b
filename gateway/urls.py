"""The gateway's plain HTTP pages: socket statistics and the demo shop."""

from __future__ import annotations

from django.urls import path

from gateway import views

urlpatterns = [
    path("ws/stats", views.stats_view, name="ws-stats"),
    path("demo/", views.demo_page, name="demo"),
    path("demo/ticket", views.demo_ticket, name="demo-ticket"),
    path("demo/cart", views.demo_cart, name="demo-cart"),
    path("demo/idle", views.demo_idle, name="demo-idle"),
    path("demo/push-sw.js", views.demo_push_worker, name="demo-push-worker"),
    path("demo/push-subscription", views.demo_push_subscription, name="demo-push-subscription"),
    path("demo/push-opt-out", views.demo_push_opt_out, name="demo-push-opt-out"),
]
