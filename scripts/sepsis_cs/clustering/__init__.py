"""Phase 3: clustering of septic ICU stays within CS-treated, untreated and pooled populations.

Modules
-------
prep          feature set, per-run preprocessing (log of skewed labs, imputation, scaling), Gower distance
methods       k-means, Gaussian mixture, Ward, Gower + PAM, HDBSCAN behind one interface
consensus     Monti consensus clustering (CDF, delta area, PAC), silhouette, BIC, bootstrap Jaccard, choice of k
characterise  cluster profiles, separating variables with bootstrap CIs, outcome rates, matching, embeddings
treatment     CS vs no-CS outcome difference per cluster by IPTW, bootstrap CIs, interaction test
trajectory    clustering of hourly trajectories and cross-tabulation with the static clusters
replication   transport of a clustering from one database to another (ARI, Cohen's kappa)
"""

POPULATIONS = ("cs", "no_cs", "pooled")
METHODS = ("kmeans", "gmm", "ward", "gower_pam", "hdbscan")
