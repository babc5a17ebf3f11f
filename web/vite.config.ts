// Builds the console into web/dist for the gateway to serve at /console/ (src/gateway/http/routes/console.ts).
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/console/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Assets under assets/ with a content hash: the gateway serves them with a year-long cache.
    assetsDir: 'assets',
    // Small SVG icons and the like stay files: the page's CSP allows no inline styles or scripts anyway.
    assetsInlineLimit: 0,
    sourcemap: false,
  },
});
