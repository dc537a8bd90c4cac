-- Indexes PostgreSQL can answer FerretDB v1's filters from (docs/SCALE.md).
--
-- FerretDB v1.24 hands a find's equalities on top-level fields to PostgreSQL as
-- `_jsonb->'field' @> '<value>'`, but its own indexes are B-trees on `(_jsonb->'field')`, which
-- that operator cannot use: every find, by _id too, is a sequential scan of the collection's
-- table. A GIN index on the same expression answers `@>`. This script creates them, for every
-- Support Chat database FerretDB keeps in this PostgreSQL database (one schema each), on the
-- fields the service's queries hand down: _id everywhere (look-ups, and updates and deletes,
-- which FerretDB applies by _id), and the selective keys of lists. Not tenant_id: FerretDB's
-- statements are prepared, and a generic plan, not knowing that a tenant is most of a table,
-- would intersect a customer's few rows with every row of the tenant from such an index.
-- FerretDB does not know these indexes: they do not show in listIndexes, and they go with
-- their table when a collection is dropped. Run it once the service has started (its first
-- start creates the collections), and again after a collection was dropped; it is idempotent:
--
--   psql "postgres://user@host:5432/ferretdb" -f deploy/ferretdb/postgresql-indexes.sql
DO $$
DECLARE
	db record;
	c record;
	f text;
BEGIN
	FOR db IN SELECT table_schema AS s FROM information_schema.tables
			WHERE table_name = '_ferretdb_database_metadata' LOOP
		FOR c IN EXECUTE format(
				'SELECT %L AS s, _jsonb->>''_id'' AS coll, _jsonb->>''table'' AS tbl FROM %I._ferretdb_database_metadata',
				db.s, db.s) LOOP
			FOREACH f IN ARRAY CASE c.coll
					WHEN 'conversations' THEN ARRAY['_id', 'customer_id']
					WHEN 'entries' THEN ARRAY['_id', 'conversation_id']
					ELSE ARRAY['_id'] END LOOP
				EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I.%I USING gin ((_jsonb->%L) jsonb_path_ops)',
					left(c.tbl, 40) || '_' || f || '_gin', c.s, c.tbl, f);
			END LOOP;
		END LOOP;
	END LOOP;
END $$;
