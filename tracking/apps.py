from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A shopper's erasure reaches tracking through personalization's signal.
        from personalization.signals import profile_erasing
        from tracking import data_rights

        profile_erasing.connect(data_rights.tracking_erase, dispatch_uid="tracking-erase")
