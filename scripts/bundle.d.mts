export function bundleFile(entryPoint: string, outfile: string, options?: { sourcemap?: boolean; splitting?: boolean }): Promise<void>;
export const cliEntry: string;
export const cliBundle: string;
