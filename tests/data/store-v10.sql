BEGIN TRANSACTION;
CREATE TABLE change_events (
	id INTEGER NOT NULL, 
	event_id TEXT, 
	kind VARCHAR(32) NOT NULL, 
	service TEXT NOT NULL, 
	namespace TEXT NOT NULL, 
	version TEXT NOT NULL, 
	actor TEXT NOT NULL, 
	description TEXT NOT NULL, 
	links JSON NOT NULL, 
	timestamp VARCHAR(27) NOT NULL, 
	source VARCHAR(16) NOT NULL, 
	created_at VARCHAR(27) NOT NULL, 
	target TEXT DEFAULT '' NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (event_id)
);
CREATE TABLE decisions (
	id INTEGER NOT NULL, 
	incident_id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	summary TEXT NOT NULL, 
	detail JSON NOT NULL, 
	created_at VARCHAR(27) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(incident_id) REFERENCES incidents (id)
);
CREATE TABLE heartbeats (
	name TEXT NOT NULL, 
	last_seen VARCHAR(27) NOT NULL, 
	incident_id INTEGER, 
	PRIMARY KEY (name)
);
CREATE TABLE incident_notes (
	id INTEGER NOT NULL, 
	incident_id INTEGER NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	text TEXT NOT NULL, 
	at VARCHAR(27) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(incident_id) REFERENCES incidents (id)
);
CREATE TABLE incidents (
	id INTEGER NOT NULL, 
	fingerprint VARCHAR(64) NOT NULL, 
	starts_at VARCHAR(27) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	alertname TEXT NOT NULL, 
	service TEXT NOT NULL, 
	namespace TEXT NOT NULL, 
	severity VARCHAR(16) NOT NULL, 
	reason TEXT NOT NULL, 
	sli VARCHAR(32), 
	value FLOAT, 
	labels JSON NOT NULL, 
	annotations JSON NOT NULL, 
	generator_url TEXT NOT NULL, 
	group_key TEXT NOT NULL, 
	destinations JSON NOT NULL, 
	suppressed_by TEXT, 
	ends_at VARCHAR(27), 
	created_at VARCHAR(27) NOT NULL, 
	updated_at VARCHAR(27) NOT NULL, 
	resolved_at VARCHAR(27), 
	acked_by TEXT, 
	acked_at VARCHAR(27), 
	resolved_by TEXT, 
	lead_id INTEGER, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_incidents_alert UNIQUE (fingerprint, starts_at)
);
INSERT INTO "incidents" VALUES(1,'b7879370733ab294','2026-11-29T19:54:53.462000Z','resolved','HighErrorRate','nutrition-service','ai-nutritionist','critical','error_rate 7.2% > critical threshold 5% (label severity=critical agrees)','error_rate',0.072,'{"alertname": "HighErrorRate", "canary": "true", "namespace": "ai-nutritionist", "service": "nutrition-service", "severity": "critical", "virtualservice": "nutrition-service-canary"}','{"description": "nutrition-service 5xx error ratio is 7.2% (threshold 5%) over the last 5m on the canary subset.", "runbook_url": "https://runbooks.example.com/alertbot/high-error-rate", "summary": "High 5xx error rate on nutrition-service", "value": "0.072"}','','{}/{}:{alertname="HighErrorRate", service="nutrition-service"}','[{"channel": "pagerduty", "target": "", "stands_in_for": []}, {"channel": "slack", "target": "#alerts-critical", "stands_in_for": []}]',NULL,'2026-11-29T19:54:54.168000Z','2026-11-30T01:01:56.437387Z','2026-11-30T01:01:56.460970Z','2026-11-30T01:01:56.460970Z',NULL,NULL,NULL,NULL);
CREATE TABLE kube_objects (
	resource VARCHAR(32) NOT NULL, 
	namespace VARCHAR(253) NOT NULL, 
	name VARCHAR(253) NOT NULL, 
	service TEXT NOT NULL, 
	resource_version TEXT NOT NULL, 
	state JSON NOT NULL, 
	state_since VARCHAR(27) NOT NULL, 
	seen_at VARCHAR(27) NOT NULL, 
	good_state JSON, 
	good_at VARCHAR(27), 
	PRIMARY KEY (resource, namespace, name)
);
CREATE TABLE outbox (
	id INTEGER NOT NULL, 
	incident_id INTEGER NOT NULL, 
	event VARCHAR(16) NOT NULL, 
	channel VARCHAR(32) NOT NULL, 
	target TEXT NOT NULL, 
	payload JSON NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER DEFAULT '0' NOT NULL, 
	next_attempt_at VARCHAR(27) NOT NULL, 
	lease_until VARCHAR(27), 
	lease_owner VARCHAR(64), 
	last_error TEXT, 
	created_at VARCHAR(27) NOT NULL, 
	delivered_at VARCHAR(27), 
	hold TEXT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(incident_id) REFERENCES incidents (id)
);
INSERT INTO "outbox" VALUES(1,1,'trigger','pagerduty','','{"incident_id": 1, "event": "trigger", "channel": "pagerduty", "target": "", "stands_in_for": [], "fingerprint": "b7879370733ab294", "alertname": "HighErrorRate", "service": "nutrition-service", "namespace": "ai-nutritionist", "severity": "critical", "reason": "error_rate 7.2% > critical threshold 5% (label severity=critical agrees)", "summary": "High 5xx error rate on nutrition-service", "description": "nutrition-service 5xx error ratio is 7.2% (threshold 5%) over the last 5m on the canary subset.", "labels": {"alertname": "HighErrorRate", "canary": "true", "namespace": "ai-nutritionist", "service": "nutrition-service", "severity": "critical", "virtualservice": "nutrition-service-canary"}, "annotations": {"description": "nutrition-service 5xx error ratio is 7.2% (threshold 5%) over the last 5m on the canary subset.", "runbook_url": "https://runbooks.example.com/alertbot/high-error-rate", "summary": "High 5xx error rate on nutrition-service", "value": "0.072"}, "starts_at": "2026-11-29T19:54:53.462000Z", "ends_at": null, "generator_url": "", "runbook_url": "https://runbooks.example.com/alertbot/high-error-rate", "group_key": "{}/{}:{alertname=\"HighErrorRate\", service=\"nutrition-service\"}", "storm": null, "actor": null, "approvals": [], "note": "", "changes": []}','pending',2,'2026-11-30T01:01:58.858454Z',NULL,NULL,'PagerDuty unreachable: ClientConnectorError: Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed (''127.0.0.1'', 9)]','2026-11-30T01:01:56.437387Z',NULL,NULL);
INSERT INTO "outbox" VALUES(2,1,'trigger','slack','#alerts-critical','{"incident_id": 1, "event": "trigger", "channel": "slack", "target": "#alerts-critical", "stands_in_for": [], "fingerprint": "b7879370733ab294", "alertname": "HighErrorRate", "service": "nutrition-service", "namespace": "ai-nutritionist", "severity": "critical", "reason": "error_rate 7.2% > critical threshold 5% (label severity=critical agrees)", "summary": "High 5xx error rate on nutrition-service", "description": "nutrition-service 5xx error ratio is 7.2% (threshold 5%) over the last 5m on the canary subset.", "labels": {"alertname": "HighErrorRate", "canary": "true", "namespace": "ai-nutritionist", "service": "nutrition-service", "severity": "critical", "virtualservice": "nutrition-service-canary"}, "annotations": {"description": "nutrition-service 5xx error ratio is 7.2% (threshold 5%) over the last 5m on the canary subset.", "runbook_url": "https://runbooks.example.com/alertbot/high-error-rate", "summary": "High 5xx error rate on nutrition-service", "value": "0.072"}, "starts_at": "2026-11-29T19:54:53.462000Z", "ends_at": null, "generator_url": "", "runbook_url": "https://runbooks.example.com/alertbot/high-error-rate", "group_key": "{}/{}:{alertname=\"HighErrorRate\", service=\"nutrition-service\"}", "storm": null, "actor": null, "approvals": [], "note": "", "changes": []}','pending',2,'2026-11-30T01:01:58.579448Z',NULL,NULL,'Slack unreachable: ClientConnectorError: Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed (''127.0.0.1'', 9)]','2026-11-30T01:01:56.437387Z',NULL,NULL);
INSERT INTO "outbox" VALUES(3,1,'resolve','pagerduty','','{"incident_id": 1, "event": "resolve", "channel": "pagerduty", "target": "", "stands_in_for": [], "fingerprint": "b7879370733ab294", "alertname": "HighErrorRate", "service": "nutrition-service", "namespace": "ai-nutritionist", "severity": "critical", "reason": "error_rate 7.2% > critical threshold 5% (label severity=critical agrees)", "summary": "High 5xx error rate on nutrition-service", "description": "nutrition-service 5xx error ratio is 7.2% (threshold 5%) over the last 5m on the canary subset.", "labels": {"alertname": "HighErrorRate", "canary": "true", "namespace": "ai-nutritionist", "service": "nutrition-service", "severity": "critical", "virtualservice": "nutrition-service-canary"}, "annotations": {"description": "nutrition-service 5xx error ratio is 7.2% (threshold 5%) over the last 5m on the canary subset.", "runbook_url": "https://runbooks.example.com/alertbot/high-error-rate", "summary": "High 5xx error rate on nutrition-service", "value": "0.072"}, "starts_at": "2026-11-29T19:54:53.462000Z", "ends_at": "2026-11-29T19:54:54.168000Z", "generator_url": "", "runbook_url": "https://runbooks.example.com/alertbot/high-error-rate", "group_key": "{}/{}:{alertname=\"HighErrorRate\", service=\"nutrition-service\"}", "storm": null, "actor": null, "approvals": [], "note": "", "changes": []}','pending',0,'2026-11-30T01:01:56.460970Z',NULL,NULL,NULL,'2026-11-30T01:01:56.460970Z',NULL,NULL);
INSERT INTO "outbox" VALUES(4,1,'resolve','slack','#alerts-critical','{"incident_id": 1, "event": "resolve", "channel": "slack", "target": "#alerts-critical", "stands_in_for": [], "fingerprint": "b7879370733ab294", "alertname": "HighErrorRate", "service": "nutrition-service", "namespace": "ai-nutritionist", "severity": "critical", "reason": "error_rate 7.2% > critical threshold 5% (label severity=critical agrees)", "summary": "High 5xx error rate on nutrition-service", "description": "nutrition-service 5xx error ratio is 7.2% (threshold 5%) over the last 5m on the canary subset.", "labels": {"alertname": "HighErrorRate", "canary": "true", "namespace": "ai-nutritionist", "service": "nutrition-service", "severity": "critical", "virtualservice": "nutrition-service-canary"}, "annotations": {"description": "nutrition-service 5xx error ratio is 7.2% (threshold 5%) over the last 5m on the canary subset.", "runbook_url": "https://runbooks.example.com/alertbot/high-error-rate", "summary": "High 5xx error rate on nutrition-service", "value": "0.072"}, "starts_at": "2026-11-29T19:54:53.462000Z", "ends_at": "2026-11-29T19:54:54.168000Z", "generator_url": "", "runbook_url": "https://runbooks.example.com/alertbot/high-error-rate", "group_key": "{}/{}:{alertname=\"HighErrorRate\", service=\"nutrition-service\"}", "storm": null, "actor": null, "approvals": [], "note": "", "changes": []}','pending',0,'2026-11-30T01:01:56.460970Z',NULL,NULL,NULL,'2026-11-30T01:01:56.460970Z',NULL,NULL);
CREATE TABLE runbook_locks (
	target TEXT NOT NULL, 
	run_id INTEGER NOT NULL, 
	acquired_at VARCHAR(27) NOT NULL, 
	PRIMARY KEY (target)
);
CREATE TABLE runbook_runs (
	id INTEGER NOT NULL, 
	runbook TEXT NOT NULL, 
	params JSON NOT NULL, 
	"trigger" TEXT NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	"plan" JSON NOT NULL, 
	applied JSON NOT NULL, 
	result TEXT NOT NULL, 
	undo_of INTEGER, 
	automation TEXT, 
	target_key TEXT, 
	approvals JSON, 
	started_at VARCHAR(27) NOT NULL, 
	finished_at VARCHAR(27), 
	PRIMARY KEY (id)
);
CREATE TABLE schema_migrations (
	version INTEGER NOT NULL, 
	description TEXT NOT NULL, 
	applied_at VARCHAR(27) NOT NULL, 
	PRIMARY KEY (version)
);
INSERT INTO "schema_migrations" VALUES(1,'incidents, outbox, silences','2026-11-30T01:01:51.165438Z');
INSERT INTO "schema_migrations" VALUES(2,'slack message references, alert storms, incidents by group and by service','2026-11-30T01:01:51.165438Z');
INSERT INTO "schema_migrations" VALUES(3,'runbook audit log and per-target locks','2026-11-30T01:01:51.165438Z');
INSERT INTO "schema_migrations" VALUES(4,'incidents: acknowledged / resolved by hand','2026-11-30T01:01:51.165438Z');
INSERT INTO "schema_migrations" VALUES(5,'change events (deployments, config changes)','2026-11-30T01:01:51.165438Z');
INSERT INTO "schema_migrations" VALUES(6,'dead man''s switch','2026-11-30T01:01:51.165438Z');
INSERT INTO "schema_migrations" VALUES(7,'runbook run approvals (two-person rule)','2026-11-30T01:01:51.165438Z');
INSERT INTO "schema_migrations" VALUES(8,'shadow-mode decisions','2026-11-30T01:01:51.165438Z');
INSERT INTO "schema_migrations" VALUES(9,'incident chains (flap damping, resolve hysteresis), held resolves, incident history','2026-11-30T01:01:51.165438Z');
INSERT INTO "schema_migrations" VALUES(10,'Kubernetes watch state, last-known-good weights, change targets','2026-11-30T01:01:51.165438Z');
CREATE TABLE silences (
	id INTEGER NOT NULL, 
	matchers JSON NOT NULL, 
	starts_at VARCHAR(27) NOT NULL, 
	ends_at VARCHAR(27) NOT NULL, 
	created_by TEXT NOT NULL, 
	comment TEXT NOT NULL, 
	created_at VARCHAR(27) NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE slack_messages (
	id INTEGER NOT NULL, 
	incident_id INTEGER NOT NULL, 
	fingerprint VARCHAR(64) NOT NULL, 
	target TEXT NOT NULL, 
	channel_id TEXT NOT NULL, 
	ts TEXT NOT NULL, 
	created_at VARCHAR(27) NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_slack_messages_incident UNIQUE (incident_id, target), 
	FOREIGN KEY(incident_id) REFERENCES incidents (id)
);
CREATE TABLE storms (
	id INTEGER NOT NULL, 
	group_key TEXT NOT NULL, 
	group_labels JSON NOT NULL, 
	anchor_incident_id INTEGER NOT NULL, 
	count INTEGER NOT NULL, 
	destinations JSON NOT NULL, 
	started_at VARCHAR(27) NOT NULL, 
	resolved_at VARCHAR(27), 
	PRIMARY KEY (id), 
	FOREIGN KEY(anchor_incident_id) REFERENCES incidents (id)
);
CREATE INDEX ix_incidents_status ON incidents (status, severity);
CREATE INDEX ix_silences_ends ON silences (ends_at);
CREATE INDEX ix_outbox_due ON outbox (status, channel, next_attempt_at);
CREATE INDEX ix_outbox_incident ON outbox (incident_id, channel, status);
CREATE INDEX ix_slack_messages_fingerprint ON slack_messages (fingerprint, target);
CREATE INDEX ix_storms_group ON storms (group_key, resolved_at);
CREATE INDEX ix_incidents_group ON incidents (group_key, created_at);
CREATE INDEX ix_incidents_service ON incidents (service, namespace, status);
CREATE INDEX ix_runbook_runs_cooldown ON runbook_runs (target_key, started_at);
CREATE INDEX ix_runbook_runs_status ON runbook_runs (status);
CREATE INDEX ix_change_events_service ON change_events (service, namespace, timestamp);
CREATE INDEX ix_incidents_lead ON incidents (lead_id);
CREATE INDEX ix_incident_notes_incident ON incident_notes (incident_id, id);
COMMIT;
