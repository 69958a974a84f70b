from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A shopper's erasure reaches notifications through personalization's signal.
        from notifications import data_rights, optouts
        from personalization.signals import consent_withdrawn, profile_erasing

        profile_erasing.connect(data_rights.notifications_erase, dispatch_uid="notifications-erase")
        # Every opt-out, whichever way it came, is published as engagement.unsubscribed.
        consent_withdrawn.connect(optouts.consent_withdrawn_publish, dispatch_uid="notifications-optout")
