from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # GDPR erase/export of a shopper reach interventions through personalization's signals.
        from campaigns import data_rights
        from personalization.signals import profile_erasing, profile_exporting

        profile_erasing.connect(data_rights.interventions_anonymise, dispatch_uid="campaigns-erase")
        profile_exporting.connect(data_rights.interventions_export, dispatch_uid="campaigns-export")
