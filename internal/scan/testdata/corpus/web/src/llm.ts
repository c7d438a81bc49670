import Anthropic from '@anthropic-ai/sdk';

const anthropic = new Anthropic({ apiKey: 'sk-ant-api03-rpFJPReSDb74NEXALWCjSv1bh95wyWVozwBNScsYxrq4ll6B9lMHEtNCmL7-jFc_AtzmgNt3helMIoIoADQOrdQu5zTkbAA' });
export default anthropic;
