// What the global set-up provides to every test file (vitest's provide/inject).
export interface ClusterState {
  server: string;
  caFile: string;
  adminKubeconfig: string;
  /** The restricted identity, with exactly the rights of deploy/rbac/per-user-namespaces.yaml. */
  dssuserKubeconfig: string;
  /** Its user name as the apiserver sees it. */
  dssuserName: string;
  kubectl: string;
  /** The apiserver's audit log (Metadata level, writes only); empty on an external cluster. */
  auditLog: string;
  dir: string;
  local: boolean;
  /**
   * The local cluster's node (scripts/node.sh), with the Spark executor image imported into its containerd
   * (use it with imagePullPolicy: Never); null when there is none (`cluster.sh up --no-node`, or an external
   * cluster without TEST_EXECUTOR_IMAGE).
   */
  node: { name: string; ip: string; executorImage: string /** NetworkPolicy is enforced there (scripts/network-policy.sh). */; networkPolicy?: boolean } | null;
}

export interface UnixFixture {
  /** The Unix account that runs dss-spark-k8s (DSS's dssuser). */
  dssuser: { name: string; uid: number; gid: number; home: string };
  /** End users allowed by the sudoers rule (in the group `group`). */
  endUsers: { name: string; uid: number; gid: number; home: string }[];
  /** A user outside the sudoers rule. */
  outsider: { name: string; uid: number; gid: number; home: string };
  group: string;
  /** The dss-spark-k8s launcher staged where every test user can run it. */
  cli: string;
  /** The node binary the CLI runs with. */
  node: string;
  /** A directory readable by all test users for test executables (fake spark-submit...). */
  sharedDir: string;
  /** dssuser's kubeconfig (a copy readable only by the dssuser Unix account). */
  dssuserKubeconfig: string;
  sudoersFile: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    cluster: ClusterState;
    unix: UnixFixture;
  }
}
