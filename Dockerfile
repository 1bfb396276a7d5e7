# spool gateway image: `docker build -t spool .`, then `docker run -p 8080:8080 spool`.
# Two stages: the build stage compiles the TypeScript with every dependency installed; the
# runtime stage holds only the compiled gateway, store and protocol code and the production
# dependencies (the native ones, lmdb, msgpackr-extract and uWebSockets.js, ship prebuilt
# linux-x64/arm64 binaries in their npm packages: nothing is compiled or downloaded).

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY tsconfig.json tsconfig.build.json ./
COPY protocol protocol
COPY store store
COPY gateway gateway
COPY client client
COPY chaos chaos
COPY perf perf
# `npm ci` runs the prepare script (the build) once every dependency is in.
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
# MALLOC_ARENA_MAX=2: glibc keeps freed memory in one malloc arena per thread (LMDB's and libuv's
# threads); with two arenas RssAnon comes back to its baseline after a burst of sessions instead of
# settling ~25 MiB above it (README "Memory after a burst", npm run bench:memory).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    SPOOL_HOST=0.0.0.0 \
    SPOOL_PORT=8080 \
    SPOOL_DATA=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist/protocol dist/protocol
COPY --from=build /app/dist/store dist/store
COPY --from=build /app/dist/gateway dist/gateway
# The embedded LMDB store lives in /data (a volume); the gateway runs as the image's non-root user.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# /healthz answers 200 while the process serves (readiness, store included, is /readyz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.SPOOL_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/gateway/cli.js"]
CMD ["serve"]
