"""Campaign status transitions enforced by PostgreSQL too, so a raw UPDATE cannot skip the rules.

Mirrors campaigns.services.ALLOWED_TRANSITIONS: draft->active|archived, active->paused|completed,
paused->active|completed|archived, completed->archived. Setting the same status again is allowed.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION campaigns_campaign_check_status() RETURNS trigger AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
        (OLD.status = 'draft' AND NEW.status IN ('active', 'archived'))
        OR (OLD.status = 'active' AND NEW.status IN ('paused', 'completed'))
        OR (OLD.status = 'paused' AND NEW.status IN ('active', 'completed', 'archived'))
        OR (OLD.status = 'completed' AND NEW.status = 'archived')
    ) THEN
        RAISE EXCEPTION 'campaign % cannot go from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'campaign_status_transition';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER campaign_status_transition
    BEFORE UPDATE OF status ON campaigns_campaign
    FOR EACH ROW EXECUTE FUNCTION campaigns_campaign_check_status();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS campaign_status_transition ON campaigns_campaign;
DROP FUNCTION IF EXISTS campaigns_campaign_check_status();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_marketer_group"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
