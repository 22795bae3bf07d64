# Sourced by scripts/check-k8s. `debian_mirror SUITE` prints the Debian mirror this machine's apt
# already uses, for debootstrap: the URI of the first enabled `deb` source that serves SUITE, or
# else of one that serves any release (not -updates, -security or -backports: the same mirror
# carries SUITE too). It reads /etc/apt/sources.list, /etc/apt/sources.list.d/*.list (one-line
# style) and /etc/apt/sources.list.d/*.sources (deb822 style); APT_ETC replaces /etc/apt, for
# tests. Prints nothing and returns 1 when apt names no Debian source.

debian_mirror() {
  local suite=$1 etc=${APT_ETC:-/etc/apt} found
  local one_line=() deb822=()
  local file
  for file in "$etc/sources.list" "$etc"/sources.list.d/*.list; do
    [[ -f $file ]] && one_line+=("$file")
  done
  for file in "$etc"/sources.list.d/*.sources; do
    [[ -f $file ]] && deb822+=("$file")
  done
  # Each source as "URI SUITE...", one per line, in apt's order.
  found=$(
    {
      # deb [option=value ...] URI SUITE COMPONENT...
      (( ${#one_line[@]} == 0 )) || awk '
        $1 == "deb" {
          i = 2
          if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
          print $i, $(i + 1)
        }' "${one_line[@]}"
      # Stanzas of "Field: value" lines, separated by blank lines or files.
      (( ${#deb822[@]} == 0 )) || awk '
        function flush() {
          if (tolower(enabled) != "no" && (" " types " ") ~ / deb /) {
            n = split(uris, uri, " ")
            for (j = 1; j <= n; j++) print uri[j], suites
          }
          types = uris = suites = ""; enabled = "yes"
        }
        BEGIN { enabled = "yes" }
        FNR == 1 && NR > 1 { flush() }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]*#/ { next }
        { field = tolower($1); value = $0; sub(/^[^:]*:[ \t]*/, "", value) }
        field == "types:" { types = value }
        field == "uris:" { uris = value }
        field == "suites:" { suites = value }
        field == "enabled:" { enabled = value }
        END { flush() }' "${deb822[@]}"
    } | awk -v suite="$suite" '
      $1 ~ /^(https?|file):/ {
        for (i = 2; i <= NF; i++) {
          if ($i == suite) { print $1; exit }
          if (!any && $i !~ /[-\/]/) any = $1
        }
      }
      END { if (any) print any }' | head -n 1
  )
  [[ -n $found ]] || return 1
  echo "${found%/}"
}
