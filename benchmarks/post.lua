-- wrk script of benchmarks/bench_serve.py: POST the JPEGs listed in a file, in turn, as multipart/form-data
-- usage: wrk -s benchmarks/post.lua http://127.0.0.1:8000/predict/deploy -- jpegs.txt
local bodies, i = {}, 0
local boundary = "voc-yolo-bench-boundary"

function init(args)
  for path in io.lines(args[1]) do
    local f = assert(io.open(path, "rb")); local data = f:read("*a"); f:close()
    bodies[#bodies + 1] = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" ..
      path:match("[^/]+$") .. "\"\r\nContent-Type: image/jpeg\r\n\r\n" .. data .. "\r\n--" .. boundary .. "--\r\n"
  end
  i = math.random(#bodies)  -- each connection starts at its own image
end

function request()
  i = i % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "multipart/form-data; boundary=" .. boundary}, bodies[i])
end
