"""Clustering: embed (plus TF-IDF/LSA) every row, choose k and fit k-means in Spark, register the centroids
as a model that assigns new rows, and describe the clusters (sizes, keywords, examples, a plot)."""
