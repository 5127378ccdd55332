# The base of the loadgen image (docker/loadgen.Dockerfile is FROM this one): Debian's python3 with
# what a CLI that sends requests and judges them needs, and loadgen's Python packages. BASE is
# loadgen/base:<hash> (debootstrap + docker import, see loadgen/mesh/images.py), the one the
# reference services' images share; site/ holds the packages of the building machine's environment,
# copied into the context by images.py. Every stage is FROM the local base or scratch: the build
# reaches no registry and no mirror. Tagged by the packages' names and versions and this file.

# 1. The base, less what only installs packages, builds locales or documents them. Deleting in a
#    layer hides files without freeing them, so stage 3 copies the result into a fresh filesystem.
ARG BASE
FROM ${BASE} AS os
RUN set -eu; \
    rm -rf /var/lib/apt /var/cache/apt /var/cache/debconf /var/log/* /etc/apt \
           /usr/bin/apt* /usr/lib/apt /usr/lib/x86_64-linux-gnu/libapt-* /usr/lib/dpkg /var/lib/dpkg/info \
           /usr/bin/dpkg* /usr/bin/perl* /usr/share/perl* /usr/lib/x86_64-linux-gnu/perl* \
           /usr/share/man /usr/share/info /usr/share/locale /usr/share/lintian /usr/share/zoneinfo \
           /usr/share/bash-completion /usr/lib/x86_64-linux-gnu/gconv /usr/bin/localedef /usr/bin/gpgv \
           /usr/lib/python3/dist-packages/* \
           /usr/lib/python3.11/test /usr/lib/python3.11/pydoc_data /usr/lib/python3.11/idlelib \
           /usr/lib/python3.11/lib2to3 /usr/lib/python3.11/turtledemo /usr/lib/python3.11/ensurepip; \
    find /usr/share/doc -type f ! -name copyright -delete; \
    find /usr/share/doc -type l -delete; \
    find /usr/share/doc -type d -empty -delete; \
    python3 -c 'import ssl, hashlib, json, asyncio, sqlite3, decimal, ctypes, zlib, lzma, bz2'

# 2. loadgen's packages, compiled here once: without byte code every run would compile numpy, scipy
#    and aiohttp again (the image's user cannot write __pycache__), some 8 s before its first request.
#    unchecked-hash: the image never changes its sources, so Python need not compare their mtimes.
FROM os AS site
COPY site /opt/loadgen/site
RUN python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/loadgen/site > /dev/null \
    && PYTHONPATH=/opt/loadgen/site python3 -c 'import numpy, scipy.stats, scipy.special, aiohttp, uvloop, httpx, httptools, rich.console, prometheus_client, hdrh.histogram, hcl, psutil, click'

# 3. One layer for each: the trimmed system, the packages.
FROM scratch
COPY --from=os / /
COPY --from=site /opt/loadgen/site /opt/loadgen/site
