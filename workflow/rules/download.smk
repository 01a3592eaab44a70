# Rules of 'download' (real ICU databases) are added here by their issue.
