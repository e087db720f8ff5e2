-- Odeion schema, migration 2: a locale per user; invite_codes.use_count becomes uses.

ALTER TABLE users ADD COLUMN locale text NOT NULL DEFAULT 'en';
ALTER TABLE invite_codes RENAME COLUMN use_count TO uses;
