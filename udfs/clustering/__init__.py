"""Clustering: embed (plus TF-IDF/LSA) every row, choose k and fit k-means in Spark, register the centroids
as a model that assigns new rows, and describe the clusters (sizes, keywords, examples, a plot)."""
from udfs.models.kinds import register

# Importing any clustering module registers its kind's builder (udfs.models.kinds): a worker that unpickles
# a clustering's UDF, or a driver that loads a registered clustering, builds it by kind like any other model.
register("kmeans_centroids", "udfs.clustering.model:load_clustering")
