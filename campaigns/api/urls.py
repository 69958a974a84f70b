from __future__ import annotations

from rest_framework.routers import SimpleRouter

from campaigns.api import views

router = SimpleRouter(trailing_slash=False)
router.register("templates", views.TemplateViewSet, basename="template")
router.register("segments", views.SegmentViewSet, basename="segment")
router.register("campaigns", views.CampaignViewSet, basename="campaign")

urlpatterns = router.urls
