from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Contact-point changes are audited here; the audit log is this app's, below it nobody may write it.
        from campaigns import services
        from personalization.signals import contact_changed, profile_erasing

        contact_changed.connect(services.profile_contact_change_audit, dispatch_uid="campaigns-contact-audit")
        profile_erasing.connect(services.profile_audit_erase, dispatch_uid="campaigns-audit-erase")
