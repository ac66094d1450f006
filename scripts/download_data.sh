#!/usr/bin/env bash
# Download and prepare the datasets under data/: resumable, checksums verified, idempotent.
#
#   bash scripts/download_data.sh demo        # the embedded demo data (no download, seconds)
#   bash scripts/download_data.sh voc2012     # PASCAL VOC 2012 trainval, 1.9 GB -> data/VOCdevkit/VOC2012
#   bash scripts/download_data.sh voc2007     # VOC 2007 trainval + test, 0.9 GB -> data/VOCdevkit/VOC2007
#   bash scripts/download_data.sh nyu         # NYU Depth v2 labeled, 2.8 GB -> data/nyu_depth_v2
#   bash scripts/download_data.sh all         # all of the above
#
# Environment:
#   DATA_DIR      where datasets go (default: data)
#   DOWNLOAD_DIR  where archives are kept (default: $DATA_DIR/downloads); delete it when done
#   DATA_MIRROR   fetch every file as $DATA_MIRROR/<file name> instead (a local folder or an
#                 internal HTTP mirror), e.g. on machines without internet
#
# An interrupted download resumes where it stopped (curl -C -, or wget -c). Every file is checked
# against its MD5 from the dataset's publishers (as pinned by torchvision for VOC); the NYU class
# mappings have no published checksum, so their SHA-256 is recorded on first download in
# $DOWNLOAD_DIR/SHA256SUMS and verified on every later run (and their content is validated by
# the converter). A file that fails its check is deleted, with a message saying so.
set -euo pipefail
if [ "${BASH_SOURCE[0]}" = "$0" ]; then cd "$(dirname "${BASH_SOURCE[0]}")/.."; fi

DATA_DIR="${DATA_DIR:-data}"
DOWNLOAD_DIR="${DOWNLOAD_DIR:-$DATA_DIR/downloads}"
DATA_MIRROR="${DATA_MIRROR:-}"

say() { echo "[data] $*"; }
die() { echo "[data] error: $*" >&2; exit 1; }

python_cmd() {
    if command -v uv >/dev/null 2>&1 && [ -f uv.lock ]; then
        uv run --frozen --no-sync python "$@"
    else
        python3 "$@"
    fi
}

md5_of() { md5sum "$1" | cut -d' ' -f1; }
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# download URL... -> $DOWNLOAD_DIR/<name>.part, resuming; tries each URL (mirrors) in turn.
download() {
    local name="$1"; shift
    local part="$DOWNLOAD_DIR/$name.part"
    local urls=("$@")
    if [ -n "$DATA_MIRROR" ]; then
        urls=("$DATA_MIRROR/$name")
        if [ -d "$DATA_MIRROR" ]; then urls=("file://$(cd "$DATA_MIRROR" && pwd)/$name"); fi
    fi
    for url in "${urls[@]}"; do
        say "downloading $name from $url"
        if command -v curl >/dev/null 2>&1; then
            # -C - resumes a partial .part file; --retry covers flaky connections.
            if curl -fL --retry 5 --retry-delay 5 -C - -o "$part" "$url"; then return 0; fi
        elif command -v wget >/dev/null 2>&1; then
            if wget -c --tries=5 -O "$part" "$url"; then return 0; fi
        else
            die "neither curl nor wget is installed"
        fi
        say "could not download from $url; $( [ -s "$part" ] && echo "kept the partial file, " )trying the next source"
    done
    die "$name: every source failed; run the same command again to resume ($part is kept)"
}

# fetch NAME MD5 URL... : make sure $DOWNLOAD_DIR/NAME exists and matches MD5 ('-': no published
# checksum; trust-on-first-use SHA-256 in SHA256SUMS).
fetch() {
    local name="$1" md5="$2"; shift 2
    local file="$DOWNLOAD_DIR/$name" part="$DOWNLOAD_DIR/$name.part"
    mkdir -p "$DOWNLOAD_DIR"
    if [ ! -f "$file" ]; then
        download "$name" "$@"
        mv "$part" "$file"
    fi
    if [ "$md5" != "-" ]; then
        local got; got="$(md5_of "$file")"
        if [ "$got" != "$md5" ]; then
            rm -f "$file"
            die "$name: checksum mismatch (md5 $got, expected $md5); deleted it, run again to re-download"
        fi
        say "$name: md5 ok"
    else
        local sums="$DOWNLOAD_DIR/SHA256SUMS" got; got="$(sha256_of "$file")"
        local known; known="$(awk -v n="$name" '$2 == n {print $1}' "$sums" 2>/dev/null || true)"
        if [ -z "$known" ]; then
            echo "$got  $name" >> "$sums"
            say "$name: no published checksum; recorded sha256 $got in $sums"
        elif [ "$known" != "$got" ]; then
            rm -f "$file"
            die "$name: sha256 $got differs from the one recorded in $sums ($known); deleted it"
        else
            say "$name: sha256 matches $sums"
        fi
    fi
}

# extract ARCHIVE STAMP: untar into $DATA_DIR once (a stamp file marks a complete extraction).
extract() {
    local archive="$DOWNLOAD_DIR/$1" stamp="$DATA_DIR/.extracted_$1"
    if [ -f "$stamp" ]; then say "$1: already extracted"; return; fi
    say "extracting $1 into $DATA_DIR"
    tar -xf "$archive" -C "$DATA_DIR"
    touch "$stamp"
}

VOC_HOSTS=(https://thor.robots.ox.ac.uk/pascal/VOC http://host.robots.ox.ac.uk/pascal/VOC)

voc() {  # voc YEAR NAME MD5
    local year="$1" name="$2" md5="$3" urls=()
    for host in "${VOC_HOSTS[@]}"; do urls+=("$host/voc$year/$name"); done
    fetch "$name" "$md5" "${urls[@]}"
    extract "$name"
}

get_voc2012() {
    voc 2012 VOCtrainval_11-May-2012.tar 6cd6e144f989b92b3379bac3b3de84fd
    say "VOC2012 ready: $DATA_DIR/VOCdevkit/VOC2012 (11540 detection / 2913 segmentation trainval images)"
}

get_voc2007() {
    voc 2007 VOCtrainval_06-Nov-2007.tar c52e279531787c972589f7e41ab4ae64
    voc 2007 VOCtest_06-Nov-2007.tar b6e924de25625d8de591ea690078ad9f
    say "VOC2007 ready: $DATA_DIR/VOCdevkit/VOC2007 (trainval 5011, test 4952 images)"
}

get_nyu() {
    local nyu=http://horatio.cs.nyu.edu/mit/silberman
    local meta=https://github.com/ankurhanda/nyuv2-meta-data/raw/master
    fetch nyu_depth_v2_labeled.mat 520609c519fba3ba5ac58c8fefcc3530 "$nyu/nyu_depth_v2/nyu_depth_v2_labeled.mat"
    fetch splits.mat 08e3c3aea27130ac7c01ffd739a4535f "$nyu/indoor_seg_sup/splits.mat"
    fetch classMapping40.mat - "$meta/classMapping40.mat"
    fetch class13Mapping.mat - "$meta/class13Mapping.mat"
    say "converting the .mat into $DATA_DIR/nyu_depth_v2 (resumable; a few minutes)"
    python_cmd -m multitask_vision.data.nyu_convert \
        "$DOWNLOAD_DIR/nyu_depth_v2_labeled.mat" "$DOWNLOAD_DIR/splits.mat" "$DATA_DIR/nyu_depth_v2" \
        --mapping40 "$DOWNLOAD_DIR/classMapping40.mat" --mapping13 "$DOWNLOAD_DIR/class13Mapping.mat"
    say "NYUv2 ready: $DATA_DIR/nyu_depth_v2 (795 train / 654 test frames)"
}

get_demo() {
    python_cmd -m multitask_vision.data.demo --root "$DATA_DIR/demo"
}

main() {
    [ $# -ge 1 ] || { sed -n '2,9p' "$0"; exit 1; }
    mkdir -p "$DATA_DIR"
    for target in "$@"; do
        case "$target" in
            demo) get_demo ;;
            voc2012) get_voc2012 ;;
            voc2007) get_voc2007 ;;
            nyu) get_nyu ;;
            all) get_demo; get_voc2012; get_voc2007; get_nyu ;;
            *) die "unknown target '$target'; choose from: demo voc2012 voc2007 nyu all" ;;
        esac
    done
}

# Sourced (tests): define the functions only.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
