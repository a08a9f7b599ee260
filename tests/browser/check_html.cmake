# Opens an HTML report in headless Chromium, from file://, and checks what a reader would see.
#
#   cmake -DCHROMIUM=<chromium> -DPAGE=<report.html> -DOUT=<dir> -DCELLS=<n> -DPANELS=<n>
#         -DTEXT=<regex the page's text must match> -P check_html.cmake
#
# Checks: the page loads with no console message (it has no script, so any message is an
# error: a resource that failed, a parse error); it makes no network request (Chromium's own
# net log, keeping the requests made for the page, which are the ones keyed by its file://
# site: the browser's background requests are not the page's); the real DOM has CELLS heat-map
# cells and PANELS panels, every SVG is rendered at a sane size, and the page is between 600
# and 40000 px tall; and a screenshot is written and is not blank. The counts come from a
# wrapper page that loads the report in an iframe and measures it with the DOM API.
cmake_minimum_required(VERSION 3.20)
foreach(var CHROMIUM PAGE OUT CELLS PANELS TEXT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_html.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT EXISTS "${PAGE}")
  message(FATAL_ERROR "no report at ${PAGE}")
endif()
file(MAKE_DIRECTORY "${OUT}")
file(REAL_PATH "${PAGE}" page)

# Chromium as a test needs it: no sandbox (CI runs as root), no GPU, none of its own network
# services, a fresh profile each run.
set(flags --headless --no-sandbox --disable-gpu --no-first-run --disable-sync
  --disable-background-networking --disable-component-update --disable-default-apps
  --disable-extensions --allow-file-access-from-files --hide-scrollbars
  "--user-data-dir=${OUT}/profile" --virtual-time-budget=10000)

file(WRITE "${OUT}/wrapper.html" "<!DOCTYPE html><html><body style=\"margin:0\">
<iframe id=\"report\" src=\"file://${page}\" style=\"width:1300px;height:900px;border:0\"></iframe>
<script>
document.getElementById('report').addEventListener('load', () => {
  const d = document.getElementById('report').contentDocument;
  const sizes = [...d.querySelectorAll('svg')].map(s => s.getBoundingClientRect())
    .filter(r => r.width < 100 || r.height < 60).length;
  document.body.dataset.cells = d.querySelectorAll('rect.cell').length;
  document.body.dataset.panels = d.querySelectorAll('.panel').length;
  document.body.dataset.svgs = d.querySelectorAll('svg').length;
  document.body.dataset.tinySvgs = sizes;
  document.body.dataset.height = d.documentElement.scrollHeight;
  document.body.dataset.text = d.body.innerText.replace(/\\s+/g, ' ');
});
</script></body></html>
")
execute_process(
  COMMAND "${CHROMIUM}" ${flags} --enable-logging=stderr --v=0 "--log-net-log=${OUT}/net.json"
    --dump-dom "file://${OUT}/wrapper.html"
  RESULT_VARIABLE status OUTPUT_VARIABLE dom ERROR_VARIABLE log TIMEOUT 120)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "chromium exited with ${status}:\n${log}")
endif()

string(REGEX MATCHALL "CONSOLE[^\n]*" console "${log}")
if(console)
  message(FATAL_ERROR "console messages while loading ${PAGE}:\n${console}")
endif()

file(STRINGS "${OUT}/net.json" requests REGEX "\"network_isolation_key\":\"file://[^\n]*\"url\":\"(https?|wss?|ftp):")
if(requests)
  message(FATAL_ERROR "${PAGE} made network requests:\n${requests}")
endif()

function(dataset name result)
  if(NOT dom MATCHES "data-${name}=\"([^\"]*)\"")
    message(FATAL_ERROR "the wrapper did not measure '${name}' (did the report load?):\n${dom}")
  endif()
  set(${result} "${CMAKE_MATCH_1}" PARENT_SCOPE)
endfunction()
dataset(cells cells)
dataset(panels panels)
dataset(svgs svgs)
dataset(tiny-svgs tiny)
dataset(height height)
dataset(text text)
message(STATUS "${PAGE}: ${cells} cells, ${panels} panels, ${svgs} SVGs (${tiny} tiny), ${height} px tall")
if(NOT cells EQUAL CELLS OR NOT panels EQUAL PANELS)
  message(FATAL_ERROR "expected ${CELLS} cells and ${PANELS} panels, the page has ${cells} and ${panels}")
endif()
if(NOT tiny EQUAL 0 OR height LESS 600 OR height GREATER 40000)
  message(FATAL_ERROR "rendered sizes: ${tiny} SVGs smaller than 100 x 60 px, page ${height} px tall")
endif()
if(NOT text MATCHES "${TEXT}")
  message(FATAL_ERROR "the page's text does not match '${TEXT}':\n${text}")
endif()

# A screenshot of the report itself; blank would be one colour, which PNG compresses to a few
# hundred bytes at this size.
file(REMOVE "${OUT}/screenshot.png")
execute_process(
  COMMAND "${CHROMIUM}" ${flags} --window-size=1300,1600 "--screenshot=${OUT}/screenshot.png"
    "file://${page}"
  RESULT_VARIABLE status OUTPUT_QUIET ERROR_VARIABLE log TIMEOUT 120)
if(NOT status EQUAL 0 OR NOT EXISTS "${OUT}/screenshot.png")
  message(FATAL_ERROR "no screenshot (chromium exited with ${status}):\n${log}")
endif()
file(SIZE "${OUT}/screenshot.png" bytes)
if(bytes LESS 20000)
  message(FATAL_ERROR "the screenshot is ${bytes} bytes: blank?")
endif()
message(STATUS "screenshot: ${OUT}/screenshot.png (${bytes} bytes)")
