# Wayfinder's image: the `wayfinder` command where the coredns image has its
# binary, run as kubeadm runs CoreDNS (non-root, read-only root filesystem,
# every capability dropped but NET_BIND_SERVICE).
#
#   docker build -t wayfinder:0.1.0 .
#
# The manifests in manifests/ run it; docs/operators-guide.md tells how.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# --copies: the virtualenv gets an interpreter binary of its own, so the file
# capability set on it below belongs to Wayfinder alone, not to every python
# in the image.
RUN python -m venv --copies /opt/wayfinder
WORKDIR /src
COPY . .
# constraints.txt pins every dependency: two builds of one commit install
# the same software, whenever they run.
RUN /opt/wayfinder/bin/pip install --no-cache-dir --disable-pip-version-check -c constraints.txt .

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/wayfinder /opt/wayfinder
# Port 53 is privileged. kubeadm's securityContext keeps NET_BIND_SERVICE in
# the bounding set but runs a non-root user, whose capabilities the kernel
# clears at exec unless the program file carries them; so, as the coredns
# image does on its binary, the interpreter gets cap_net_bind_service as a
# file capability (+ep: permitted and effective at exec, since Python never
# raises capabilities itself). readlink -f: setcap needs the real file, not a
# symlink. It is set in this stage because COPY does not reliably carry
# extended attributes, which is where file capabilities live; libcap2-bin
# (setcap) leaves the image again in the same layer.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep "$(readlink -f /opt/wayfinder/bin/python)" \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 wayfinder \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin wayfinder
# Numeric, so that the kubelet can check runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# The root filesystem is read-only in the cluster: no bytecode to write.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
EXPOSE 53/udp 53/tcp 8080/tcp 8181/tcp 8443/tcp 9153/tcp
ENTRYPOINT ["/opt/wayfinder/bin/wayfinder"]
CMD ["-conf", "/etc/coredns/Corefile"]
