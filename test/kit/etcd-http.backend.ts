/** The etcdgateway backend, beside its contract test (as docs/extending.md shows them side by side). */
export { ETCDGATEWAY, EtcdGateway } from '../support/etcd-http.backend.js';
