#!/usr/bin/env bash
# One-command, idempotent setup: virtual environment, Python packages, KenLM's
# lmplz/build_binary, handwriting fonts and running text for the synthetic data set.
# Every step leaves a stamp file; a rerun skips finished steps in well under a second.
# Step timings are appended to tools/setup-times.tsv (the README quotes them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TOOLS="$ROOT/tools"
PYTHON="${PYTHON:-python3}"
KENLM_VERSION="0.3.0"
OCRD_VALIDATORS_VERSION="2.67.1"
FONT_PACKAGES=(fonts-dkg-handwriting fonts-dancingscript fonts-ecolier-court fonts-kaushanscript
               fonts-tlwg-purisa-ttf fonts-sjfonts fonts-breip fonts-kristi)
TEXT_PACKAGES=(fortunes-min fortunes)
BOOST_PACKAGES=(libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev)

mkdir -p "$TOOLS/stamps"

timed() {  # timed NAME STAMP COMMAND...: run COMMAND unless STAMP exists, record its time
    local name="$1" stamp="$2"; shift 2
    if [[ -f "$stamp" ]]; then return 0; fi
    echo "==> setup: $name"
    local start=$SECONDS
    "$@"
    local took=$((SECONDS - start))
    touch "$stamp"
    printf '%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$name" "$took" >> "$TOOLS/setup-times.tsv"
    echo "    $name took ${took}s"
}

make_venv() {
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
}

install_python_packages() {
    # torch is pinned here: a bare "torch" requirement would pull a multi-GB CUDA build.
    "$VENV/bin/pip" install --quiet "torch==2.13.0" "kenlm==$KENLM_VERSION" -e "$ROOT[dev]"
    # tests only: the official PAGE 2019-07-15 schema (ocrd_validators/page.xsd, Apache-2.0).
    # --no-deps: only the .xsd file is read, its Python side and heavy dependencies are never used
    "$VENV/bin/pip" install --quiet --no-deps "ocrd-validators==$OCRD_VALIDATORS_VERSION"
}

have_boost_headers() {
    [[ -f /usr/include/boost/program_options.hpp && -f /usr/include/boost/thread.hpp \
       && -f /usr/include/boost/test/unit_test.hpp && -f /usr/include/boost/system/error_code.hpp ]]
}

install_boost() {
    have_boost_headers && return 0
    if [[ "$(id -u)" != 0 ]]; then
        echo "error: KenLM's lmplz needs the Boost development headers, which are missing." >&2
        echo "       Install them, then rerun 'make setup':" >&2
        echo "       sudo apt-get install ${BOOST_PACKAGES[*]}" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${BOOST_PACKAGES[@]}" >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${BOOST_PACKAGES[@]}" >/dev/null; }
}

build_kenlm_tools() {
    local src="$TOOLS/src"
    rm -rf "$src" && mkdir -p "$src" "$TOOLS/bin"
    # --no-binary kenlm, not :all:, or pip also builds the build requirements (cmake!) from source
    "$VENV/bin/pip" download --quiet --no-deps --no-build-isolation --no-binary kenlm "kenlm==$KENLM_VERSION" -d "$src"
    tar -xzf "$src"/kenlm-*.tar.gz -C "$src"
    local kdir; kdir="$(find "$src" -maxdepth 1 -type d -name 'kenlm-*' | head -1)"
    mkdir -p "$kdir/build"
    local log="$TOOLS/kenlm-build.log"
    (cd "$kdir/build" && cmake .. -DCMAKE_BUILD_TYPE=Release && make -j"$(nproc)" lmplz build_binary) >"$log" 2>&1 \
        || { tail -30 "$log" >&2; echo "error: building KenLM's lmplz failed; full log: $log" >&2; exit 1; }
    cp "$kdir/build/bin/lmplz" "$kdir/build/bin/build_binary" "$TOOLS/bin/"
    rm -rf "$src"
}

fetch_deb() {  # fetch_deb PACKAGE DEST: unpack one Debian package without installing it
    local pkg="$1" dest="$2" debs="$TOOLS/debs"
    rm -rf "$debs" && mkdir -p "$debs" "$dest"
    (cd "$debs" && apt-get download "$pkg" >/dev/null 2>&1) \
        || (cd "$debs" && apt-get update -qq >/dev/null 2>&1 && apt-get download "$pkg" >/dev/null) \
        || { echo "error: could not download the Debian package $pkg (apt-get download $pkg)" >&2; exit 1; }
    dpkg-deb -x "$debs"/*.deb "$dest"
    rm -rf "$debs"
}

fetch_fonts() {
    rm -rf "$TOOLS/fonts"
    for pkg in "${FONT_PACKAGES[@]}"; do
        local root="$TOOLS/debroot/$pkg"
        fetch_deb "$pkg" "$root"
        mkdir -p "$TOOLS/fonts/$pkg"
        find "$root" \( -name '*.ttf' -o -name '*.otf' \) -type f -exec cp {} "$TOOLS/fonts/$pkg/" \;
        cp "$root/usr/share/doc/$pkg/copyright" "$TOOLS/fonts/$pkg/COPYRIGHT"
    done
    rm -rf "$TOOLS/debroot"
}

fetch_text() {
    rm -rf "$TOOLS/text"
    mkdir -p "$TOOLS/text/fortunes"
    for pkg in "${TEXT_PACKAGES[@]}"; do
        local root="$TOOLS/debroot/$pkg"
        fetch_deb "$pkg" "$root"
        find "$root/usr/share/games/fortunes" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' \
            -exec cp {} "$TOOLS/text/fortunes/" \;
        cp "$root/usr/share/doc/$pkg/copyright" "$TOOLS/text/fortunes/COPYRIGHT.$pkg"
    done
    rm -rf "$TOOLS/debroot"
}

# the packages' stamp lives in the venv: a removed or recreated .venv reinstalls them
deps_stamp="$VENV/.python-deps-$(cat "$ROOT/pyproject.toml" "$0" | sha1sum | cut -c1-12)"
timed "virtual environment" "$VENV/bin/python" make_venv
timed "python packages (torch, kenlm, pyctcdecode, ...)" "$deps_stamp" install_python_packages
timed "boost headers for kenlm" "$TOOLS/stamps/boost" install_boost
timed "kenlm lmplz + build_binary" "$TOOLS/bin/build_binary" build_kenlm_tools
timed "handwriting fonts" "$TOOLS/stamps/fonts" fetch_fonts
timed "running text (fortunes)" "$TOOLS/stamps/text" fetch_text
echo "setup: ready ($VENV, $TOOLS/bin/lmplz)"
