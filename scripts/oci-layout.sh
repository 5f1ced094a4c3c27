# Sourced by the image scripts: writes a one-layer OCI image layout from a root file system, without a
# registry or an image builder. containerd imports it (`ctr images import`) under the fully qualified name
# in the index's io.containerd.image.name annotation.

# write_oci_layout ROOTFS OUT_DIR NAME CONFIG_JSON
#   CONFIG_JSON: the image config's "config" object (User, Env, Entrypoint, WorkingDir...).
write_oci_layout() {
  local rootfs=$1 out=$2 name=$3 config=$4
  local blobs="$out/blobs/sha256" layer_digest layer_size config_digest config_size manifest_digest manifest_size
  mkdir -p "$blobs"
  # Device nodes, /proc and /sys are the runtime's; file order and owners fixed so that the same tree gives
  # the same digest.
  tar --numeric-owner --sort=name --mtime=@0 --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -C "$rootfs" -cf "$blobs/layer.tmp" .
  layer_digest=$(sha256sum "$blobs/layer.tmp" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$blobs/layer.tmp")
  mv "$blobs/layer.tmp" "$blobs/$layer_digest"

  printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$config" "$layer_digest" >"$blobs/config.tmp"
  config_digest=$(sha256sum "$blobs/config.tmp" | cut -d' ' -f1)
  config_size=$(stat -c %s "$blobs/config.tmp")
  mv "$blobs/config.tmp" "$blobs/$config_digest"

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$blobs/manifest.tmp"
  manifest_digest=$(sha256sum "$blobs/manifest.tmp" | cut -d' ' -f1)
  manifest_size=$(stat -c %s "$blobs/manifest.tmp")
  mv "$blobs/manifest.tmp" "$blobs/$manifest_digest"

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$manifest_size" "$name" "${name##*:}" >"$out/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
}
