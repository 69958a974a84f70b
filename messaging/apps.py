from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the metrics so /metrics lists them from the first scrape, before any traffic.
        from messaging import metrics  # noqa: F401
