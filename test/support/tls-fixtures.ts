// Checked-in TLS fixtures (test/fixtures/tls, made by its generate.sh with a 100-year
// validity), so no test needs openssl at run time.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const dir = new URL("../fixtures/tls/", import.meta.url);

export interface CertAndKey {
  certPath: string;
  cert: string;
  key: string;
}

function pair(name: string): CertAndKey {
  const certPath = fileURLToPath(new URL(`${name}.pem`, dir));
  return { certPath, cert: readFileSync(certPath, "utf8"), key: readFileSync(new URL(`${name}-key.pem`, dir), "utf8") };
}

/** The test CA: the only thing that makes `server` trusted. */
export const testCa = pair("ca");
/** Signed by the test CA for IP:127.0.0.1 and DNS:localhost. */
export const serverCert = pair("server");
/** Signed by the test CA, but for DNS:not-this-host.example only. */
export const wrongHostCert = pair("wrong-host");
/** Self-signed for 127.0.0.1 and localhost, unrelated to the test CA. */
export const selfSignedCert = pair("self-signed");
