# Rules of 'ingest_databases' (real ICU databases) are added here by their issue.
