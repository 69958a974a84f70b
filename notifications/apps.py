from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A shopper's erasure reaches notifications through personalization's signal.
        from notifications import data_rights
        from personalization.signals import profile_erasing

        profile_erasing.connect(data_rights.notifications_erase, dispatch_uid="notifications-erase")
