from django.apps import AppConfig


class PersonalizationConfig(AppConfig):
    name = "personalization"
    default_auto_field = "django.db.models.BigAutoField"
