from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"

    def ready(self) -> None:
        from django_structlog import signals

        from core.observability import request_finished, request_started

        signals.bind_extra_request_metadata.connect(request_started, dispatch_uid="core-request-started")
        signals.bind_extra_request_finished_metadata.connect(
            request_finished, dispatch_uid="core-request-finished"
        )
