# syntax=docker/dockerfile:1
# Build stage: dev dependencies and tsc.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY workers ./workers
COPY bench ./bench
RUN npm run build

# Runtime stage: production dependencies and the compiled output only, as the unprivileged `node` user.
FROM node:22-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY src/public ./src/public
USER node
EXPOSE 3000
# Node's fetch, so the image needs no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form, no npm or shell in between: SIGTERM reaches Node (PID 1, which handles it) and starts the drain.
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/server.js"]
