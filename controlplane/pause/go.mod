module dss-spark-k8s/controlplane/pause

go 1.24.0
