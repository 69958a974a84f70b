from django.apps import AppConfig


class InterventionsConfig(AppConfig):
    name = "interventions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # GDPR erase/export of a shopper reach interventions through personalization's signals.
        from interventions import data_rights
        from personalization.signals import profile_erasing, profile_exporting

        profile_erasing.connect(data_rights.interventions_anonymise, dispatch_uid="interventions-erase")
        profile_exporting.connect(data_rights.interventions_export, dispatch_uid="interventions-export")
